"""The settings of an attribution run (flags of ``wagle attribute`` come from these fields).

A light module (no torch): a config is checked, and ``wagle attribute --help`` shown, without
loading the ML stack. The registries it checks names against (score methods, granularities,
eligible presets, places for the gradient sums) live beside their torch code; their names are
repeated here, and a test (tests/test_scores.py) checks that both lists agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wagle import config as cfg
from wagle.data.prompt import PROMPT_FORMAT_HELP, check_prompt_format
from wagle.errors import WagleError
from wagle.models import DTYPES
from wagle.registry import lookup
from wagle.validate import check_ratio

if TYPE_CHECKING:
    from wagle.attribution.scores import ScoreMethod

# The names of scores.SCORES, and those whose score has a γ (they use retain gradients).
SCORE_METHODS = ("wagle", "wagle-fisher", "snip", "gradient", "magnitude", "random", "wanda")
GAMMA_METHODS = ("wagle", "wagle-fisher")
GRANULARITY_NAMES = ("global", "tensor", "row")  # select.GRANULARITIES
ELIGIBLE_PRESETS = ("all", "linear", "block-linear")  # eligible.ELIGIBLE
GRADIENT_SUMS = ("float32", "float32-cpu", "model-dtype")  # gradients.SUM_PLACES


@dataclass
class AttributionConfig:
    method: str = cfg.field("wagle", f"score method: {', '.join(SCORE_METHODS)}")
    ratio: list[float] = cfg.field(
        [0.95], "fraction ρ in (0, 1] of eligible weights selected; several give one mask each"
    )
    gamma: list[float] = cfg.field(
        [1e-6],
        "γ of the wagle scores (the damping of wagle-fisher), for gradients SUMMED over samples "
        "(published: 1e-6; on mean gradients it would be γ/N); several give one mask each",
    )
    granularity: str | None = cfg.field(
        None,
        f"{', '.join(GRANULARITY_NAMES)}; default: the method's own (row for wanda, else global)",
    )
    eligible: str = cfg.field(
        "all", f"parameters that may be selected: {', '.join(ELIGIBLE_PRESETS)}"
    )
    eligible_pattern: str | None = cfg.field(
        None, "regular expression that eligible parameter names must also match (re.search)"
    )
    forget_target: str = cfg.field(
        "answer",
        "target of QA forget samples: 'answer', 'refusal' (the PO method) or another answer "
        "field such as paraphrased_answer",
    )
    max_samples: int = cfg.field(0, "forget samples used, drawn at random; 0 = all")
    retain_samples: int = cfg.field(
        0, "retain samples drawn at random; 0 = as many as forget samples (published), -1 = all"
    )
    batch_size: int = cfg.field(8, "samples per forward+backward")
    max_length: int = cfg.field(512, "tokens per sample (longer answers are truncated)")
    seed: int = cfg.field(0, "seed of the sample draws, refusal answers and random scores")
    dtype: str = cfg.field(
        "float32", f"dtype to load the model in: {', '.join(DTYPES)} (gradients sum in fp32)"
    )
    prompt_format: str = cfg.field("auto", PROMPT_FORMAT_HELP)
    gradient_checkpointing: bool = cfg.field(
        False, "recompute each decoder layer in backward instead of keeping its activations"
    )
    gradient_sums: str = cfg.field(
        "float32",
        "where the gradient sums live: float32 (on the model's device), float32-cpu (host "
        "memory: frees 8 bytes per weight on the GPU, slower), model-dtype (bf16 sums halve "
        "them but round every addition)",
    )
    fsdp: bool = cfg.field(
        False,
        "shard the model over the processes with FSDP2 (torchrun / accelerate launch): weights "
        "and gradient sums take 1/N per device; on by itself under an accelerate FSDP2 config",
    )

    def __post_init__(self) -> None:
        _check_name(self.method, SCORE_METHODS, "score method")
        self.ratio, self.gamma = _as_list(self.ratio), _as_list(self.gamma)  # YAML `ratio: 0.8`
        for ratio in self.ratio:
            check_ratio(ratio)
        if not all(g > 0 for g in self.gamma):
            raise WagleError(f"gamma must be > 0; got {self.gamma}")
        if len(self.gamma) > 1 and not self.uses_gamma:
            raise WagleError(f"score method {self.method!r} has no γ; give a single --gamma")
        if self.granularity is not None:
            _check_name(self.granularity, GRANULARITY_NAMES, "granularity")
        _check_name(self.eligible, ELIGIBLE_PRESETS, "eligible-parameter preset")
        if self.dtype not in DTYPES:
            raise WagleError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        check_prompt_format(self.prompt_format)
        _check_name(self.gradient_sums, GRADIENT_SUMS, "gradient_sums")
        if self.max_samples < 0 or self.retain_samples < -1 or self.batch_size < 1:
            raise WagleError("max_samples ≥ 0, retain_samples ≥ -1 and batch_size ≥ 1 are needed")
        try:
            re.compile(self.eligible_pattern or "")
        except re.error as err:
            raise WagleError(f"eligible_pattern is not a valid regex: {err}") from None

    @property
    def uses_gamma(self) -> bool:
        """Whether the score method has a γ (and so needs retain data)."""
        return self.method in GAMMA_METHODS

    @property
    def score_method(self) -> ScoreMethod:
        from wagle.attribution.scores import SCORES  # torch

        return SCORES[self.method]


def _check_name(name: str, choices: tuple[str, ...], kind: str) -> None:
    lookup(dict.fromkeys(choices), name, kind)


def _as_list(value: float | list[float]) -> list[float]:
    """Floats from a number or a list (YAML may give ``ratio: 0.8`` or ``gamma: 1e-6`` strings)."""
    try:
        return [float(v) for v in (value if isinstance(value, list | tuple) else [value])]
    except (TypeError, ValueError):
        raise WagleError(f"expected a number or a list of numbers; got {value!r}") from None
