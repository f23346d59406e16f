"""The attribution pipeline: data → one pass over forget and retain → scores → masks.

    result = attribute(model, tokenizer, forget_records, retain_records, config)
    for gamma in result.gammas:
        scores = result.scores(gamma)  # lazy: each tensor's scores computed when read
        for ratio in config.ratio:
            save_mask(result.select(scores, ratio), path, result.metadata(ratio, gamma, scores))

γ convention: gradients are SUMMED over samples (each sample's loss is its mean NLL over its
labelled tokens) and the retain gradient is summed over as many retain samples as forget
samples, drawn at random: the published setting, where γ = 1e-6 reproduces the published
ranking. γ on mean gradients would be γ_summed / N.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from wagle.attribution.config import AttributionConfig
from wagle.attribution.eligible import eligible_names
from wagle.attribution.gradients import Examples, Statistics, collect_statistics
from wagle.attribution.masks import Mask, complete_mask
from wagle.attribution.scores import Scores, compute_scores
from wagle.attribution.select import numels, select_mask
from wagle.data.batching import encode_records
from wagle.data.load import Record
from wagle.data.prompt import with_prompt_format
from wagle.data.refusals import refusal_records
from wagle.errors import WagleError
from wagle.sharding import gather_on_main

GRADIENT_CONVENTION = "sum over samples of each sample's mean NLL over its labelled tokens"


@dataclass
class Attribution:
    """The statistics of one pass over the data; scores and masks for any γ and ρ from them."""

    model: torch.nn.Module
    config: AttributionConfig
    names: list[str]  # eligible parameter names
    stats: Statistics

    @property
    def gammas(self) -> list[float | None]:
        return list(self.config.gamma) if self.config.score_method.uses_gamma else [None]

    def scores(self, gamma: float | None = None) -> Scores:
        """Lazy scores (``LazyScores``): nothing is computed or kept until selection reads it."""
        gamma = self.config.gamma[0] if gamma is None else gamma
        return compute_scores(
            self.model,
            self.stats,
            self.config.method,
            self.names,
            gamma=gamma,
            seed=self.config.seed,
        )

    def select(self, scores: Scores, ratio: float) -> Mask:
        """A mask over every parameter of the model; unscored ones are never selected.

        Sharded model (FSDP2): each process selects on its chunks, and the whole mask is
        gathered on the first process, one tensor at a time; the others get ``{}``.
        """
        granularity = self.config.granularity or self.config.score_method.granularity
        mask = select_mask(scores, ratio, granularity)
        layouts = getattr(scores, "layouts", {})
        if any(layout is not None for layout in layouts.values()):
            mask = gather_on_main(mask, layouts)
            if not mask:
                return {}
        return complete_mask(mask, self.model)

    def metadata(self, ratio: float, gamma: float | None, scores: Scores) -> dict[str, Any]:
        """What a mask file records about how it was made (``n_eligible``: weights scored)."""
        c = self.config
        return {
            "method": c.method,
            "ratio": ratio,
            "gamma": gamma,
            "gradient_convention": GRADIENT_CONVENTION,
            "granularity": c.granularity or c.score_method.granularity,
            "eligible": c.eligible,
            "eligible_pattern": c.eligible_pattern,
            "n_eligible": sum(numels(scores).values()),
            "n_forget": self.stats.n_forget,
            "n_retain": self.stats.n_retain,
            "forget_target": c.forget_target,
            "seed": c.seed,
            "dtype": c.dtype,
        }


def attribute(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    forget: list[Record] | list[str],
    retain: list[Record] | list[str],
    config: AttributionConfig,
    *,
    progress: bool = True,
) -> Attribution:
    """Collect what ``config.method`` needs in one pass over forget and one over retain data.

    ``forget`` / ``retain`` are QA records (loss on answer tokens) or raw texts (all tokens).
    """
    method = config.score_method
    tokenizer = with_prompt_format(tokenizer, config.prompt_format)
    forget_examples = encode_forget(tokenizer, forget, config)
    needs_retain = method.uses_gamma
    n_forget = len(forget_examples)
    retain_examples = encode_retain(tokenizer, retain, n_forget, config) if needs_retain else []
    names = eligible_names(model, config.eligible, config.eligible_pattern)
    stats = collect_statistics(
        model,
        forget_examples,
        retain_examples,
        names,
        method.needs,
        batch_size=config.batch_size,
        pad_token_id=tokenizer.pad_token_id,
        progress=progress,
        sums=config.gradient_sums,
        checkpointing=config.gradient_checkpointing,
    )
    return Attribution(model, config, names, stats)


def encode_forget(
    tokenizer: PreTrainedTokenizerBase, records: list[Record] | list[str], config: AttributionConfig
) -> Examples:
    """The (capped) forget samples, targets per ``config.forget_target``, encoded."""
    if not records:
        raise WagleError("the forget set is empty")
    records = draw(records, config.max_samples or len(records), config.seed)
    key = config.forget_target
    if isinstance(records[0], dict):
        if key == "refusal":
            records, key = refusal_records(records, config.seed), "answer"
        elif not isinstance(records[0].get(key), str):
            raise WagleError(f"forget records have no text field {key!r} to use as the target")
    elif key != "answer":
        raise WagleError(f"forget_target {key!r} needs QA records; the forget set is raw text")
    return encode_records(tokenizer, records, answer_key=key, max_length=config.max_length)


def encode_retain(
    tokenizer: PreTrainedTokenizerBase,
    records: list[Record] | list[str],
    n_forget: int,
    config: AttributionConfig,
) -> Examples:
    """``retain_samples`` retain samples (0: as many as forget samples; -1: all), encoded."""
    if not records:
        raise WagleError(
            f"score method {config.method!r} needs retain data; the retain set is empty"
        )
    n = {0: n_forget, -1: len(records)}.get(config.retain_samples, config.retain_samples)
    records = draw(records, n, config.seed + 1)
    return encode_records(tokenizer, records, max_length=config.max_length)


def draw(records: list, n: int, seed: int) -> list:
    """``n`` records drawn without replacement (seeded), in their original order; all if n ≥ len."""
    if n >= len(records):
        return list(records)
    return [records[i] for i in sorted(random.Random(seed).sample(range(len(records)), n))]
