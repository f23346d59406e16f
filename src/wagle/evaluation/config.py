"""The settings of one evaluation run (flags of ``wagle evaluate`` come from these fields).

A light module (no torch): ``wagle evaluate --help`` reads it without loading the stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from wagle import config as cfg
from wagle.data.prompt import PROMPT_FORMAT_HELP, check_prompt_format
from wagle.errors import WagleError
from wagle.models import DTYPES

# The names of ``wagle.evaluation.mia.MIA_ATTACKS`` (a test checks they agree), known without
# torch so that --help lists them and a typo fails before anything loads.
MIA_ATTACK_NAMES = ("loss", "zlib", "reference", "gradnorm", "min_k", "min_k_plus_plus")
DEFAULT_MIA_ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")  # one forward pass each


@dataclass
class EvalConfig:
    benchmark: str = cfg.field("playground", "playground | tofu | mcq | muse | text | lm-eval")
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
    # Membership attacks (forget vs holdout) and lm-eval-harness (docs/metrics.md).
    mia_attacks: list[str] = cfg.field(
        list(DEFAULT_MIA_ATTACKS),
        f"membership attacks, AUC of forget vs holdout: {', '.join(MIA_ATTACK_NAMES)} "
        "(reference: needs --mia-reference-model; gradnorm: one backward pass per sample)",
    )
    mia_reference_model: str = cfg.field(
        "", "model directory for the reference attack (e.g. the retain model; adds 'reference')"
    )
    gradnorm_p: float = cfg.field(2.0, "gradnorm attack: the gradient norm's p (1, 2 or inf)")
    tasks: str = cfg.field(
        "", "lm-eval: comma-separated task names, e.g. mmlu,wmdp_bio (needs wagle[lm-eval])"
    )
    task_dir: str = cfg.field("", "lm-eval: a directory of extra task YAML files (local tasks)")
    num_fewshot: int | None = cfg.field(None, "lm-eval: few-shot examples (None: the task's own)")
    limit: int = cfg.field(0, "lm-eval: at most this many examples per task (0: all)")
    prompt_format: str = cfg.field("auto", PROMPT_FORMAT_HELP)

    def __post_init__(self) -> None:
        if not 0 < self.mink_k <= 1:
            raise WagleError(f"mink_k must be in (0, 1], got {self.mink_k}")
        if min(self.batch_size, self.max_new_tokens, self.prefix_tokens) < 1:
            raise WagleError("batch_size, max_new_tokens and prefix_tokens must be ≥ 1")
        if self.continuation_tokens < 1:
            raise WagleError("continuation_tokens must be ≥ 1")
        check_prompt_format(self.prompt_format)
        self._check_ecosystem()
        if self.dtype not in DTYPES:
            raise WagleError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        # The benchmark name, its default split and the choice style are resolved against
        # their registries by ``benchmarks.resolve`` (this module stays free of torch).

    def _check_ecosystem(self) -> None:
        """Membership attacks and lm-eval options (names checked here, without torch)."""
        if bad := [a for a in self.mia_attacks if a not in MIA_ATTACK_NAMES]:
            raise WagleError(
                f"unknown membership attack {bad[0]!r}; choose from: {', '.join(MIA_ATTACK_NAMES)}"
            )
        if self.mia_reference_model and "reference" not in self.mia_attacks:
            self.mia_attacks = [*self.mia_attacks, "reference"]
        if "reference" in self.mia_attacks and not self.mia_reference_model:
            raise WagleError("the reference attack needs --mia-reference-model (a model directory)")
        if self.gradnorm_p not in (1, 2, float("inf")):
            raise WagleError(f"gradnorm_p must be 1, 2 or inf, got {self.gradnorm_p}")
        if self.benchmark == "lm-eval" and not lm_eval_tasks(self.tasks):
            raise WagleError("--benchmark lm-eval needs --tasks (comma-separated, e.g. mmlu)")
        if self.limit < 0 or (self.num_fewshot is not None and self.num_fewshot < 0):
            raise WagleError("limit and num_fewshot must be ≥ 0")


def lm_eval_tasks(tasks: str) -> list[str]:
    """The task names of a comma-separated ``--tasks`` value."""
    return [t.strip() for t in tasks.split(",") if t.strip()]
