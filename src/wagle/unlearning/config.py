"""The configuration of an unlearning run: data, model, method, mask and training options.

Method-specific options (β, λ, ...) live on each method's ``Options`` dataclass
(``wagle.unlearning.options``); ``method_options`` builds them from the same YAML mapping /
command-line namespace. This module imports no torch: a config is checked before the ML stack
is loaded.
Training defaults follow the TOFU recipe: AdamW, lr 1e-5, weight decay 0.01, effective
batch 32 (4 × 8 accumulation), 5 epochs, linear schedule with one epoch (20%) of warm-up.

Precision: weights are loaded and updated in fp32 by default; ``bf16: true`` adds bf16
autocast for the forward and backward passes (mixed precision, what the 7B recipes use).
Training bf16 weights directly (``dtype: bfloat16`` without LoRA) loses most updates: bf16
keeps 8 significant bits, so a weight w moves only when its update exceeds about |w|·2⁻⁹, and
at lr 1e-5 AdamW's steps (≈ lr) fall below that for any |w| > ~5e-3. It is allowed, with a
warning, except with ``optimizer_state: selected``, which keeps fp32 masters of the selected
weights (tested: tests/test_precision.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

from wagle import config as cfg
from wagle import validate
from wagle.data.load import read_records
from wagle.data.prompt import PROMPT_FORMAT_HELP, check_prompt_format
from wagle.errors import WagleError
from wagle.extras import require
from wagle.models import DTYPES
from wagle.patches.checks import SAVE_CHOICES, check_patch_base
from wagle.publish import check_repo_id
from wagle.registry import lookup
from wagle.unlearning import checkpoints
from wagle.unlearning.devices import accumulation_steps, world_size
from wagle.unlearning.options import METHOD_OPTIONS

# Optimizers whose update of an entry with zero gradient (and zero moments) is exactly zero,
# and whose weight decay is decoupled (so wagle can apply it under the mask). SGD's decay is
# coupled L2 inside the optimizer: it is not offered.
EXACT_OPTIMIZERS = ("adamw_torch", "adamw_torch_fused")
# Where AdamW keeps its state (wagle.unlearning.selective_adamw).
OPTIMIZER_STATES = ("auto", "full", "selected")
AUTO_MAX_DENSITY = 0.5  # `auto` picks `selected` below this fraction of trainable weights
# tracker → (the module it needs, how to install it)
TRACKERS = {
    "tensorboard": ("tensorboard", "pip install tensorboard"),
    "wandb": ("wandb", "pip install wandb"),
    "mlflow": ("mlflow", "pip install mlflow"),
}


@dataclass
class UnlearnConfig:
    model: str = cfg.field("", "the model to unlearn: a local directory or hub id")
    forget: str = cfg.field("", "forget data: a .json/.jsonl file, a directory or a hub id")
    retain: str = cfg.field("", "retain data: a .json/.jsonl file, a directory or a hub id")
    forget_split: str | None = cfg.field(None, "split of --forget to read (directories, hub)")
    retain_split: str | None = cfg.field(None, "split of --retain to read (directories, hub)")
    method: str = cfg.field("npo", f"unlearning method, one of {', '.join(sorted(METHOD_OPTIONS))}")
    mask: str | None = cfg.field(None, "mask file (safetensors); none = dense unlearning")
    out: str = cfg.field("", "output directory for the unlearned model and its logs")
    epochs: float = cfg.field(5.0, "training epochs over the forget set")
    max_steps: int = cfg.field(0, "stop after this many optimizer steps (0: use epochs)")
    learning_rate: float = cfg.field(1e-5, "peak learning rate")
    batch_size: int = cfg.field(4, "forget samples (each with a retain sample) per device step")
    gradient_accumulation_steps: int = cfg.field(
        8, "micro-batches per optimizer step (ignored when global_batch_size is set)"
    )
    global_batch_size: int = cfg.field(
        0,
        "forget samples per optimizer step over all processes; accumulation = global / "
        "(batch_size × processes); 0: batch_size × gradient_accumulation_steps per process",
    )
    warmup: float = cfg.field(0.2, "warm-up: a fraction of all steps if < 1, else a step count")
    lr_scheduler: str = cfg.field("linear", "learning-rate schedule (transformers name)")
    weight_decay: float = cfg.field(0.01, "AdamW decoupled weight decay (mask-aware)")
    max_grad_norm: float = cfg.field(1.0, "gradient clipping norm (0: off)")
    optimizer: str = cfg.field("adamw_torch", f"one of {', '.join(EXACT_OPTIMIZERS)}")
    optimizer_state: str = cfg.field(
        "auto",
        "AdamW state: 'full' (fp32 moments for every entry of a partly selected tensor), "
        "'selected' (moments and fp32 masters for the selected entries only; same weights), "
        f"'auto' (selected when the mask selects < {AUTO_MAX_DENSITY:g} of the trainable weights)",
    )
    dtype: str = cfg.field(
        "float32",
        f"weight dtype to load and train in: {', '.join(DTYPES)} (not float32: without fp32 "
        "masters, updates below its resolution are lost; see bf16 and optimizer_state)",
    )
    bf16: bool = cfg.field(False, "bf16 mixed precision (autocast) on fp32 weights")
    gradient_checkpointing: bool = cfg.field(
        False, "recompute activations in the backward pass (less memory, ~30% more time)"
    )
    fsdp: bool = cfg.field(
        False,
        "shard weights, gradients, mask and optimizer state over the processes with FSDP2 "
        "(torchrun / accelerate launch; exact like one process); on by itself under an "
        "accelerate FSDP2 config",
    )
    prompt_format: str = cfg.field("auto", PROMPT_FORMAT_HELP)
    max_length: int = cfg.field(512, "maximum tokens per sample")
    seed: int = cfg.field(0, "seed of shuffling and of the forget/retain pairing")
    lora: bool = cfg.field(
        False,
        "train LoRA adapters (merged on save) instead of the weights; with a mask, every "
        "forward pass builds a dense ΔW and W' (fp32) per targeted layer: no memory saving",
    )
    lora_rank: int = cfg.field(8, "LoRA rank r")
    lora_alpha: float = cfg.field(16.0, "LoRA scaling α (the update is scaled by α/r)")
    lora_targets: list[str] = cfg.field(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "module names that get LoRA adapters",
    )
    progress: bool = cfg.field(True, "show progress bars")
    trust_remote_code: bool = cfg.field(False, "run the model's own Python code (off: safer)")
    # Evaluation during unlearning and the best checkpoint (wagle.unlearning.trajectory).
    eval_reference: str = cfg.field(
        "",
        "eval.json of a retain model (wagle evaluate): evaluate during unlearning on its "
        "benchmark and split, with forget quality, and keep the best checkpoint",
    )
    eval_benchmark: str = cfg.field(
        "", "benchmark to evaluate on during unlearning without --eval-reference (playground, tofu)"
    )
    eval_data: str = cfg.field("", "data of --eval-benchmark (default: the benchmark's own)")
    eval_every: int = cfg.field(
        0, "evaluate every N optimizer steps (0: at every eval_epochs-th epoch end)"
    )
    eval_epochs: int = cfg.field(2, "with eval_every 0: evaluate every this many epochs")
    eval_forget_size: int = cfg.field(
        32, "forget questions answered per evaluation (ROUGE, degeneration)"
    )
    eval_retain_size: int = cfg.field(
        32, "records of each utility set (retain, real authors, world facts) per evaluation"
    )
    eval_batch_size: int = cfg.field(64, "sequences per forward pass / generation batch")
    utility_floor: float = cfg.field(
        0.95, "a checkpoint is eligible if its utility ≥ this × the original model's"
    )
    early_stop: int = cfg.field(
        0, "stop once the best checkpoint has not changed for this many evaluations (0: off)"
    )
    keep_last: bool = cfg.field(False, "also save the last step's weights in <out>/last")
    save_every: int = cfg.field(
        0,
        "save a checkpoint every N optimizer steps in <out>/checkpoints, so that an "
        "interrupted run can be continued with --resume (0: off); deleted when the run ends",
    )
    # Experiment tracking (wagle.unlearning.tracking): the Trainer's report_to.
    report_to: list[str] = cfg.field(
        ["none"],
        f"trackers that log the steps and evaluation points: {', '.join(TRACKERS)} or none "
        "(TensorBoard: <out>/runs/<run name>)",
    )
    run_name: str = cfg.field("", "the tracked run's name (default: the output directory's name)")
    run_group: str = cfg.field("", "W&B group / MLflow experiment of the run (wagle run: its name)")
    push_to_hub: str = cfg.field(
        "", "REPO_ID: upload the model, its mask and its model card to the Hugging Face Hub"
    )

    # What the output holds (wagle.patches): the model, its patch against --model, or both.
    save: str = cfg.field(
        "model",
        "what to write: 'model' (the unlearned weights), 'patch' (patch.safetensors: the changed "
        "weights with their old and new values, no second model; see wagle patch) or 'both'",
    )

    def __post_init__(self) -> None:
        lookup(METHOD_OPTIONS, self.method, "unlearning method")
        if self.save not in SAVE_CHOICES:
            raise WagleError(f"save must be one of {', '.join(SAVE_CHOICES)}, got {self.save!r}")
        self.report_to = check_trackers(self.report_to)
        if self.push_to_hub:
            check_repo_id(self.push_to_hub)
        if self.optimizer not in EXACT_OPTIMIZERS:
            raise WagleError(
                f"optimizer {self.optimizer!r} is not supported; the mask invariant is exact "
                f"with: {', '.join(EXACT_OPTIMIZERS)}"
            )
        if self.optimizer_state not in OPTIMIZER_STATES:
            raise WagleError(f"optimizer_state must be one of {', '.join(OPTIMIZER_STATES)}")
        if self.dtype not in DTYPES:
            raise WagleError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        check_prompt_format(self.prompt_format)
        if self.dtype != "float32" and not self.lora and self.optimizer_state != "selected":
            warnings.warn(
                f"training {self.dtype} weights directly: AdamW updates smaller than the "
                f"{self.dtype} resolution of a weight (~|w|/256) are lost, so at lr 1e-5 most "
                "selected weights never move; use dtype float32 with bf16 (mixed precision), "
                "or optimizer_state selected (fp32 masters of the selected weights)",
                UserWarning,
                stacklevel=2,
            )
        if self.global_batch_size < 0:
            raise WagleError("global_batch_size must be ≥ 0")
        accumulation_steps(  # a global batch that does not divide fails here, before loading
            self.batch_size, self.gradient_accumulation_steps, self.global_batch_size, world_size()
        )
        positive = ("learning_rate", "batch_size", "gradient_accumulation_steps", "max_length")
        if bad := [n for n in positive if getattr(self, n) <= 0]:
            raise WagleError(f"{', '.join(bad)} must be > 0")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise WagleError("set epochs > 0 or max_steps > 0")
        if self.lora and self.lora_rank <= 0:
            raise WagleError("lora_rank must be > 0")
        counts = ("eval_epochs", "eval_forget_size", "eval_retain_size", "eval_batch_size")
        if bad := [n for n in counts if getattr(self, n) <= 0]:
            raise WagleError(f"{', '.join(bad)} must be > 0")
        if self.eval_every < 0 or self.early_stop < 0 or self.save_every < 0:
            raise WagleError("eval_every, early_stop and save_every must be ≥ 0")
        if not 0 <= self.utility_floor <= 1:
            raise WagleError(f"utility_floor must be in [0, 1], got {self.utility_floor}")
        if self.keep_last and self.lora:
            raise WagleError("keep_last is not supported with lora (the result is merged once)")

    def require_paths(self) -> None:
        """A run from files (``unlearn``) needs them; the in-memory ``unlearn_model`` does not."""
        for name in ("model", "forget", "retain", "out"):
            if not getattr(self, name):
                raise WagleError(f"--{name} is required (on the command line or in --config)")


def check_trackers(report_to: list[str] | str) -> list[str]:
    """The trackers of ``report_to`` ([] for none), each known and installed; else a user error."""
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    names = [n for n in names if n != "none"]
    for name in names:
        if name not in TRACKERS:
            raise WagleError(
                f"unknown tracker {name!r} in report_to; choose from: {', '.join(TRACKERS)}, none"
            )
        module, install = TRACKERS[name]
        require(module, f"--report-to {name}", install)
    return names


def check_inputs(config: UnlearnConfig, overwrite: bool = False, resume: bool = False) -> None:
    """The run's files, checked before any model is loaded: the model directory, forget and
    retain data (records, fields, emptiness; a warning if they share samples), the mask
    against the model's shapes, an output directory that already holds a finished run, and
    checkpoints (``--resume`` needs one; an unfinished run's need --resume or --overwrite)."""
    config.require_paths()
    validate.check_model_dir(config.model)
    validate.check_data_source(config.forget, config.forget_split, "forget")
    validate.check_data_source(config.retain, config.retain_split, "retain")
    if config.mask:
        validate.check_mask_file(config.mask, config.model)
    validate.check_output(config.out, overwrite)
    if config.save != "model":
        check_patch_base(config.model, config.dtype)
    if resume and not config.save_every:
        raise WagleError("--resume needs --save-every > 0 (the interrupted run's value)")
    checkpoints.check_resume(config.out, resume, overwrite)
    if resume:  # the run's options (the method's are compared once they are built)
        saved = checkpoints.read_state(checkpoints.latest_checkpoint(config.out))
        checkpoints.check_same_run(saved, cfg.to_dict(config))
    forget = read_records(config.forget, config.forget_split)
    retain = read_records(config.retain, config.retain_split)
    for name, records in (("forget", forget), ("retain", retain)):
        check_records(records, name)
    validate.warn_overlap(forget, retain)


def check_records(records: list[dict], what: str) -> None:
    """Every record must be QA (question and answer strings) or raw text (a text string)."""
    qa = "question" in records[0]
    fields = ("question", "answer") if qa else ("text",)
    for i, record in enumerate(records):
        if bad := [f for f in fields if not isinstance(record.get(f), str)]:
            raise WagleError(
                f"{what} record {i + 1} needs field {bad[0]!r} (a string); "
                f"it has fields {sorted(record)}"
            )
        if empty := [f for f in fields if validate.emptiness(record[f])]:
            raise WagleError(f"{what} record {i + 1}: field {empty[0]!r} is empty")


def method_options_class(method: str) -> type:
    return lookup(METHOD_OPTIONS, method, "unlearning method")


def method_options(method: str, *sources: dict[str, Any] | argparse.Namespace) -> Any:
    """The ``Options`` of ``method`` from the sources; another method's option is an error."""
    options_cls = method_options_class(method)
    names = {f.name for f in dataclasses.fields(options_cls)}
    others = set(all_method_option_fields()) - names
    picked = []
    for source in sources:
        items = vars(source) if isinstance(source, argparse.Namespace) else source
        if stray := sorted(others & set(items)):
            raise WagleError(
                f"option(s) {stray} do not apply to method {method!r}; "
                f"its options: {sorted(names) or 'none'}"
            )
        picked.append({k: v for k, v in items.items() if k in names})
    return cfg.build(options_cls, *picked)


def all_method_option_fields() -> dict[str, dataclasses.Field]:
    """Every method option by name (first definition wins), for command-line flags."""
    fields: dict[str, dataclasses.Field] = {}
    for method in sorted(METHOD_OPTIONS):
        for f in dataclasses.fields(METHOD_OPTIONS[method]):
            fields.setdefault(f.name, f)
    return fields


def split_recipe(recipe: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run options, method options) of a YAML recipe; an unknown key is a user error."""
    run_names = {f.name for f in dataclasses.fields(UnlearnConfig)}
    method_names = set(all_method_option_fields())
    if unknown := sorted(set(recipe) - run_names - method_names):
        raise WagleError(
            f"unknown option(s) {unknown} in the recipe; valid: {sorted(run_names | method_names)}"
        )
    run = {k: v for k, v in recipe.items() if k in run_names}
    return run, {k: v for k, v in recipe.items() if k in method_names}
