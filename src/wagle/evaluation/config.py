"""The settings of one evaluation run (flags of ``wagle evaluate`` come from these fields)."""

from __future__ import annotations

from dataclasses import dataclass

from wagle import config as cfg
from wagle.data.prompt import PROMPT_FORMAT_HELP, check_prompt_format
from wagle.errors import WagleError
from wagle.registry import lookup


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
        "data source: a directory of <split>.jsonl files or one .jsonl file; default: the built "
        "playground's data (playground), locuslab/TOFU (tofu)",
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
        from wagle.evaluation.benchmarks import BENCHMARKS  # a cycle at import time
        from wagle.evaluation.mcq import CHOICE_STYLES

        lookup(CHOICE_STYLES, self.mcq_style, "multiple-choice style")
        check_prompt_format(self.prompt_format)
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise WagleError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        self.split = self.split or lookup(BENCHMARKS, self.benchmark, "benchmark").default_split
