"""The masks of an experiment's cells: one statistics pass per seed, masks kept packed, the
statistics freed as soon as the masks exist.

Per seed, ``MaskBank.prepare`` collects the attribution statistics once (the forget and retain
gradient passes every score method of the recipe needs), on the original weights, selects
every (score method, ratio) mask the seed's unfinished cells need and packs it (bits or
indices, ``attribution.masks.packing``: 1/8 byte per weight at most, against 1 byte for a bool
mask and 8 for the fp32 gradient sums); then it frees the statistics. A 7B model's two fp32
gradient sums are 54 GB: they must be gone before the first cell trains. Only an automatic
ratio search, whose ratios are not known in advance, keeps its seed's statistics until
``release``.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any

import torch

from wagle import config as cfg
from wagle.attribution import SCORES, Attribution, AttributionConfig, collect_statistics
from wagle.attribution.eligible import eligible_names
from wagle.attribution.gradients import RETAIN_GRAD
from wagle.attribution.masks import Mask, density, layer_of
from wagle.attribution.masks.packing import pack, unpack
from wagle.attribution.pipeline import encode_forget, encode_retain
from wagle.data.prompt import with_prompt_format
from wagle.experiment.recipe import WHOLE_MODEL_MASKS


@dataclass
class PackedMask:
    tensors: dict[str, tuple[str, torch.Tensor, tuple[int, ...]]]  # name → (encoding, data, shape)
    info: dict[str, Any]  # what config.json records: {"mask": metadata, "mask_density": ...}
    seconds: float  # the statistics pass plus this mask's scoring and selection

    @classmethod
    def of(cls, mask: Mask, info: dict[str, Any], seconds: float) -> PackedMask:
        return cls({n: (*pack(s), tuple(s.shape)) for n, s in mask.items()}, info, seconds)

    def unpack(self) -> Mask:
        return {
            n: unpack(encoding, data, shape) for n, (encoding, data, shape) in self.tensors.items()
        }


class MaskBank:
    """``prepare(seed, wanted)`` then ``get(seed, method, ratio)``; see the module doc.

    Statistics are taken on the original weights (``setup.restore()`` first), whatever the
    cells did to the model before.
    """

    def __init__(self, setup) -> None:
        self.setup = setup
        self.masks: dict[tuple[int, str, float], PackedMask] = {}
        self.kept: dict[int, tuple[list[str], Any, float]] = {}  # seed → statistics, for auto
        self.scores: dict[tuple[int, str], Any] = {}
        self.passes = 0  # statistics passes (the tests count them)

    def attribution_config(self, method: str, seed: int) -> AttributionConfig:
        r = self.setup.recipe
        fixed = {"method": method, "seed": seed, "gamma": [r.gamma], "ratio": [1.0]}
        return cfg.build(AttributionConfig, r.attribution, fixed)

    def prepare(self, seed: int, wanted: set[tuple[str, float]], keep: bool = False) -> None:
        """Select and pack the masks ``wanted`` = {(score method, ratio)} of ``seed``; ``keep``
        the statistics for later ratios (an automatic search), else free them now."""
        missing = sorted(w for w in wanted if (seed, *w) not in self.masks)
        if not missing:
            return  # a later search collects its statistics when it first needs them (get)
        statistics = self.kept.get(seed) or self._collect(seed)
        for method, ratio in missing:
            self.masks[(seed, method, ratio)] = self._select(seed, method, ratio, statistics)
        if keep:
            self.kept[seed] = statistics
        self._free(seed, keep)

    def get(self, seed: int, method: str, ratio: float) -> tuple[Mask, dict[str, Any], float]:
        """(mask, its record for config.json, attribution seconds) of a prepared mask, or one
        selected now from ``seed``'s statistics (collected now and kept, if need be)."""
        key = (seed, method, ratio)
        if key not in self.masks:
            if seed not in self.kept:
                self.kept[seed] = self._collect(seed)
            self.masks[key] = self._select(seed, method, ratio, self.kept[seed])
        packed = self.masks[key]
        return packed.unpack(), packed.info, packed.seconds

    def release(self, seed: int) -> None:
        """Forget everything of ``seed``: its masks and any statistics kept."""
        self.masks = {k: v for k, v in self.masks.items() if k[0] != seed}
        self.kept.pop(seed, None)
        self._free(seed, keep=False)

    def _collect(self, seed: int) -> tuple[list[str], Any, float]:
        """(eligible names, statistics, seconds): one pass for every score method of the recipe."""
        s = self.setup
        s.restore()
        methods = [m for m in s.recipe.masks if m not in WHOLE_MODEL_MASKS]
        needs = frozenset().union(*(SCORES[m].needs for m in methods))
        config = self.attribution_config(methods[0], seed)
        tick = time.perf_counter()
        tokenizer = with_prompt_format(s.tokenizer, config.prompt_format)  # this stage's format
        forget = encode_forget(tokenizer, _attribution_records(s.forget), config)
        retain = (
            encode_retain(tokenizer, _attribution_records(s.retain), len(forget), config)
            if RETAIN_GRAD in needs
            else []
        )
        names = eligible_names(s.model, config.eligible, config.eligible_pattern)
        stats = collect_statistics(
            s.model, forget, retain, names, needs,
            batch_size=config.batch_size, pad_token_id=s.tokenizer.pad_token_id, progress=False,
            sums=config.gradient_sums, checkpointing=config.gradient_checkpointing,
        )  # fmt: skip
        self.passes += 1
        return names, stats, time.perf_counter() - tick

    def _select(self, seed, method: str, ratio: float, statistics) -> PackedMask:
        names, stats, stats_seconds = statistics
        tick = time.perf_counter()
        attribution = Attribution(
            self.setup.model, self.attribution_config(method, seed), names, stats
        )
        scores = self.scores.setdefault((seed, method), attribution.scores())  # lazy, shared
        mask = attribution.select(scores, ratio)
        layers = {k: a / b for k, (a, b) in density(mask, layer_of).items()}
        meta = attribution.metadata(ratio, attribution.config.gamma[0], scores)
        seconds = stats_seconds + time.perf_counter() - tick
        return PackedMask.of(mask, {"mask": meta, "mask_density": layers}, seconds)

    def _free(self, seed: int, keep: bool) -> None:
        if not keep:
            self.scores = {k: v for k, v in self.scores.items() if k[0] != seed}
        release_device_memory()


def release_device_memory() -> None:
    """Collect what is unreferenced and give the GPU's cached blocks back."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _attribution_records(records: list[dict]) -> list:
    """QA records as they are; raw-text records as their texts."""
    return [r["text"] for r in records] if records and "question" not in records[0] else records
