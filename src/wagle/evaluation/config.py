"""The settings of one evaluation run (flags of ``wagle evaluate`` come from these fields).

A light module (no torch): ``wagle evaluate --help`` reads it without loading the stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from wagle import config as cfg
from wagle.data.prompt import PROMPT_FORMAT_HELP, check_prompt_format
from wagle.errors import WagleError
from wagle.models import DTYPES


@dataclass
class EvalConfig:
    benchmark: str = cfg.field("playground", "playground | tofu | mcq | muse | text")
    split: str = cfg.field(
        "",
        "playground/tofu: the forget split (forget01, forget05, forget10; default forget10); "
        "mcq/text: the split file to read when --data is a directory",
    )
    data: str = cfg.field(
        "",
        "data source: a directory of <split>.jsonl files or one .jsonl file (muse: also "
        "muse-bench/MUSE-News or MUSE-Books); default: the built playground's data "
        "(playground), locuslab/TOFU (tofu)",
    )
    reference: str = cfg.field(
        "",
        "eval.json (or its directory) of a retain model on the same benchmark and split: "
        "enables forget_quality and privacy leakage",
    )
    batch_size: int = cfg.field(64, "sequences per forward pass and per generation batch")
    max_new_tokens: int = cfg.field(64, "greedy generation length for QA answers")
    mink_k: float = cfg.field(0.4, "Min-K% membership attack: fraction of least likely tokens")
    mcq_style: str = cfg.field(
        "letters", "multiple choice: score the 'letters' or the choice 'text'"
    )
    prefix_tokens: int = cfg.field(32, "MUSE verbatim memorisation: prompt length in tokens")
    continuation_tokens: int = cfg.field(128, "MUSE verbatim memorisation: tokens to continue")
    dtype: str = cfg.field(
        "float32", "dtype to load the model in: float32, bfloat16 (7B models) or float16"
    )
    prompt_format: str = cfg.field("auto", PROMPT_FORMAT_HELP)

    def __post_init__(self) -> None:
        if not 0 < self.mink_k <= 1:
            raise WagleError(f"mink_k must be in (0, 1], got {self.mink_k}")
        if min(self.batch_size, self.max_new_tokens, self.prefix_tokens) < 1:
            raise WagleError("batch_size, max_new_tokens and prefix_tokens must be ≥ 1")
        if self.continuation_tokens < 1:
            raise WagleError("continuation_tokens must be ≥ 1")
        check_prompt_format(self.prompt_format)
        if self.dtype not in DTYPES:
            raise WagleError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        # The benchmark name, its default split and the choice style are resolved against
        # their registries by ``benchmarks.resolve`` (this module stays free of torch).
