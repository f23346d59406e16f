"""Unlearning runs: ``unlearn_model`` on loaded objects, ``unlearn`` = load → it → save.

``unlearn_model`` takes a loaded model, tokenizer and forget/retain records and returns the
unlearned plain model, holding the **selected** checkpoint's weights when the run is evaluated
while it unlearns (a ``reference`` or ``config.eval_benchmark``; ``wagle.unlearning.trajectory``),
else the last step's. It never loads or saves a model; given ``out`` (and an evaluated run)
it writes ``trajectory.json`` there as points are measured.

``unlearn``'s output directory (written atomically, by the main process only) holds the
unlearned model and tokenizer (``save_pretrained``, safetensors), ``run_config.json`` (the
resolved run and method options, the mask's fingerprint and metadata, the selection criterion
and the selected point), ``training_log.json`` (per step: loss terms, forget and retain NLL,
learning rate), ``trajectory.json`` when evaluated, and with ``keep_last`` the last step's
weights in ``last/``.

With ``config.save_every`` > 0 and an ``out``, checkpoints are saved beside the unfinished
output and ``resume=True`` continues from the latest (``wagle.unlearning.checkpoints``); the
resumed run ends with the same weights, step log and trajectory as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainingArguments, set_seed

from wagle import __version__
from wagle import config as cfg
from wagle.attribution.masks import Mask, load_mask, mask_metadata
from wagle.data.batching import encode_records
from wagle.data.load import Record, read_records
from wagle.data.prompt import with_prompt_format
from wagle.errors import WagleError
from wagle.evaluation.benchmarks import BENCHMARKS, qa_sets
from wagle.evaluation.summary import load_reference
from wagle.io import atomic_dir, ensure_writable_dir, fingerprint, write_json
from wagle.modelcard import write_run_card
from wagle.models import load_pretrained
from wagle.patches.runs import save_run_patch
from wagle.registry import lookup
from wagle.sharding import barrier, is_main_process
from wagle.unlearning import checkpoints, tracking
from wagle.unlearning import fsdp as sharded
from wagle.unlearning.batch import PairCollator, PairedDataset
from wagle.unlearning.config import UnlearnConfig
from wagle.unlearning.devices import accumulation_steps, fsdp_requested, world_size
from wagle.unlearning.lora import add_lora, merge_lora
from wagle.unlearning.objective import METHODS
from wagle.unlearning.trainer import MaskedUnlearningTrainer
from wagle.unlearning.trajectory import (
    TRAJECTORY_FILE,
    TrajectoryCallback,
    TrajectoryEvaluator,
    load_state,
)


@dataclass
class UnlearnResult:
    model: torch.nn.Module  # the plain model (LoRA merged) with the selected weights
    step_log: list[dict[str, float]]
    trajectory: list[dict[str, Any]] = field(default_factory=list)  # evaluation points
    selected: dict[str, Any] = field(default_factory=dict)  # the chosen point, with "step"
    criterion: dict[str, Any] = field(default_factory=dict)  # how it was chosen
    last_state: dict[str, torch.Tensor] | None = None  # keep_last: the last trainable weights
    out: Path | None = None


def unlearn_model(
    model: torch.nn.Module,
    tokenizer,
    forget: list[Record],
    retain: list[Record],
    config: UnlearnConfig,
    options: Any = None,
    mask: Mask | None = None,
    reference: dict[str, Any] | None = None,
    out: Path | None = None,
    resume: bool = False,
    keep_checkpoints: bool = False,
    start_point: dict[str, Any] | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> UnlearnResult:
    """Unlearn ``forget`` from ``model`` (in place) while keeping ``retain``; see the module doc.

    ``options``: the method's options (None: its defaults); ``mask``: what may change (None:
    dense); ``reference``: a loaded retain-model evaluation (``load_reference``; default: read
    ``config.eval_reference`` if set) for forget quality during unlearning. ``resume``: continue
    from the latest checkpoint under ``out`` (``model`` is the original model, as for a fresh
    run). The checkpoints are deleted when the run completes, unless ``keep_checkpoints``
    (``unlearn`` keeps them until its output is saved). ``start_point``: the step-0 trajectory
    point of this model and evaluation, measured already (``TrajectoryCallback``).
    ``callbacks``: the caller's own ``TrainerCallback``s (a stopping rule, a logger), added to
    the Trainer's.
    """
    objective = lookup(METHODS, config.method, "unlearning method")(options)
    record = {"run": cfg.to_dict(config), "method_options": dataclasses.asdict(objective.options)}
    checkpoint = _checkpoint(config, out, resume, record)
    fsdp_requested()  # FSDP1 and DeepSpeed stop here
    if sharded.is_sharded_model(model):
        sharded.prepare(model, config)
    tokenizer = with_prompt_format(tokenizer, config.prompt_format)
    if reference is None and config.eval_reference:
        reference = _load_reference(config)
    forget = objective.forget_records(forget)
    objective.encode(tokenizer, forget, config.max_length)
    data = PairedDataset(
        _encode(tokenizer, forget, config), _encode(tokenizer, retain, config), config.seed
    )
    trajectory = _trajectory(tokenizer, config, reference, out, start_point)
    set_seed(config.seed)  # LoRA's initialisation happens before the Trainer seeds
    trained = (
        add_lora(model, config.lora_targets, config.lora_rank, config.lora_alpha, mask)
        if config.lora
        else model
    )
    saving = bool(config.save_every) and out is not None
    with tempfile.TemporaryDirectory() as scratch:
        root = str(checkpoints.checkpoint_root(out)) if saving else scratch
        trainer = MaskedUnlearningTrainer(
            model=trained,
            args=training_arguments(config, root),
            train_dataset=data,
            data_collator=PairCollator(tokenizer.pad_token_id, objective.companions()),
            objective=objective,
            mask=None if config.lora else mask,
            trajectory=trajectory,
            optimizer_state=config.optimizer_state,
            run_record=record,
            callbacks=list(callbacks),  # the caller's own, e.g. a stopping rule
        )
        tracking.attach(trainer, config, out)  # report_to: steps and points to the trackers
        with trainer.accelerator.autocast():  # reference values in the training precision
            objective.prepare(model, data, tokenizer.pad_token_id)  # the original weights'
        trainer.train(resume_from_checkpoint=None if checkpoint is None else str(checkpoint))
    if saving and not keep_checkpoints and is_main_process():
        shutil.rmtree(checkpoints.checkpoint_root(out), ignore_errors=True)
    final = merge_lora(trained, mask) if config.lora else model
    result = UnlearnResult(final, trainer.step_log, out=out)
    if trajectory is None:
        result.selected = {"step": trainer.state.global_step}
        result.criterion = {"rule": "last step (not evaluated during unlearning)"}
    else:
        result.trajectory, result.selected = trajectory.points, trajectory.selected
        result.criterion, result.last_state = trajectory.criterion, trajectory.last_state
    return result


def unlearn(config: UnlearnConfig, options: Any = None, resume: bool = False) -> UnlearnResult:
    """Run ``config`` with the method's ``options`` (None: its defaults) and save the result;
    ``resume``: continue from the latest checkpoint of an interrupted run of it."""
    config.require_paths()
    objective = lookup(METHODS, config.method, "unlearning method")(options)
    reference = _load_reference(config) if config.eval_reference else None
    if (
        config.eval_benchmark
        and lookup(BENCHMARKS, config.eval_benchmark, "benchmark").qa_sets is None
    ):
        raise WagleError(
            f"eval_benchmark must be a QA benchmark (playground, tofu), got {config.eval_benchmark!r}"
        )
    fsdp = fsdp_requested(config.fsdp)  # before anything loads; FSDP1, DeepSpeed stop here
    if fsdp:
        sharded.refuse_unsupported(lora=config.lora, save_every=config.save_every)
    model, tokenizer = load_pretrained(
        config.model, dtype=config.dtype, device=None, trust_remote_code=config.trust_remote_code,
        fsdp=fsdp,
    )  # fmt: skip
    mask = None
    if config.mask:  # sharded: read one tensor at a time when its chunk is cut
        mask = sharded.open_mask_for(config.mask, model) if fsdp else load_mask(config.mask, model)
    forget = read_records(config.forget, config.forget_split)
    retain = read_records(config.retain, config.retain_split)
    options = options or objective.options
    result = unlearn_model(
        model, tokenizer, forget, retain, config, options, mask, reference, Path(config.out),
        resume=resume, keep_checkpoints=True,
    )  # fmt: skip
    if sharded.is_sharded_model(result.model):  # saved: the whole model, on the main process
        result.model = sharded.gather_plain(result.model) or result.model
    if is_main_process():
        _save(result, with_prompt_format(tokenizer, config.prompt_format), config, options)
    barrier()  # several processes: the output exists when any of them returns
    return result


def _checkpoint(
    config: UnlearnConfig, out: Path | None, resume: bool, record: dict[str, Any]
) -> Path | None:
    """The checkpoint to resume from (checked against this run's options), or None; a fresh
    run first removes an earlier run's checkpoints."""
    if not resume:
        if config.save_every and out is not None and is_main_process():
            shutil.rmtree(checkpoints.checkpoint_root(out), ignore_errors=True)
        return None
    if not config.save_every or out is None:
        raise WagleError("--resume needs --save-every > 0 and an output directory")
    checkpoints.check_resume(out, resume=True, overwrite=False)
    latest = checkpoints.latest_checkpoint(out)
    saved = checkpoints.read_state(latest)
    checkpoints.check_same_run(saved, record["run"], record["method_options"])
    return latest


def _trajectory(
    tokenizer,
    config: UnlearnConfig,
    reference: dict[str, Any] | None,
    out: Path | None,
    start_point: dict[str, Any] | None = None,
) -> TrajectoryCallback | None:
    """The evaluation callback, on the reference's benchmark and split (or eval_benchmark's)."""
    if reference is None and not config.eval_benchmark:
        return None
    if reference is not None:
        benchmark, split = reference["benchmark"], reference["split"]
        data = config.eval_data or reference.get("config", {}).get("data", "")
    else:
        benchmark, split = config.eval_benchmark, config.forget_split or "forget10"
        data = config.eval_data
    evaluator = TrajectoryEvaluator(
        tokenizer,
        qa_sets(benchmark, split, data),
        reference,
        forget_size=config.eval_forget_size,
        retain_size=config.eval_retain_size,
        batch_size=config.eval_batch_size,
        # answers as long as the reference's, so that their ROUGE compares like with like
        max_new_tokens=(reference or {}).get("config", {}).get("max_new_tokens", 64),
    )
    if out is not None and is_main_process():
        ensure_writable_dir(out)
    return TrajectoryCallback(
        evaluator,
        every=config.eval_every,
        epochs=config.eval_epochs,
        utility_floor=config.utility_floor,
        early_stop=config.early_stop,
        keep_last=config.keep_last,
        path=None if out is None else Path(out) / TRAJECTORY_FILE,
        start_point=start_point,
    )


def _load_reference(config: UnlearnConfig) -> dict[str, Any]:
    """``config.eval_reference``, checked against ``eval_benchmark`` when set (else its own)."""
    path = Path(config.eval_reference)
    path = path / "eval.json" if path.is_dir() else path
    try:
        record = json.loads(path.read_text())
        benchmark, split = record.get("benchmark"), record.get("split")
    except (OSError, ValueError, AttributeError):
        benchmark = split = None  # load_reference reports what is wrong
    return load_reference(path, config.eval_benchmark or benchmark, split)


def training_arguments(config: UnlearnConfig, output_dir: str) -> TrainingArguments:
    """The Trainer's arguments for ``config`` (checkpoints every ``save_every`` steps into
    ``output_dir``, the last two kept; no reporting)."""
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=accumulation_steps(
            config.batch_size,
            config.gradient_accumulation_steps,
            config.global_batch_size,
            world_size(),
        ),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        optim=config.optimizer,
        bf16=config.bf16,
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        seed=config.seed,
        data_seed=config.seed,
        logging_strategy="no",
        logging_nan_inf_filter=False,  # its check reads the loss back every micro-batch
        # batches are copied to the device without waiting (from pinned memory)
        accelerator_config={"non_blocking": torch.cuda.is_available()},
        save_strategy="steps" if config.save_every else "no",
        save_steps=config.save_every or 500,
        save_total_limit=2,
        report_to=config.report_to or "none",
        run_name=tracking.run_name(config, Path(config.out) if config.out else None),
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not config.progress,
        ddp_find_unused_parameters=False,
    )


def _encode(tokenizer, records: list[dict], config: UnlearnConfig) -> list[dict]:
    """QA records (answer tokens labelled) or raw-text records (all tokens labelled)."""
    if "question" in records[0] and "answer" in records[0]:
        return encode_records(tokenizer, records, max_length=config.max_length)
    if "text" in records[0]:
        texts = [r["text"] for r in records]
        return encode_records(tokenizer, texts, max_length=config.max_length)
    raise WagleError(f"records need question/answer or text fields; got {sorted(records[0])}")


def _save(result: UnlearnResult, tokenizer, config: UnlearnConfig, options: Any) -> None:
    with atomic_dir(config.out) as tmp:
        if config.save != "patch":
            result.model.save_pretrained(tmp)
        if config.save != "model":  # the changed weights only, against config.model's files
            save_run_patch(result, config, options, tmp)
        tokenizer.save_pretrained(tmp)
        record = _run_record(config, options)
        record |= {"criterion": result.criterion, "selected": result.selected}
        write_json(tmp / "run_config.json", record)
        write_run_card(tmp, record, result.model)  # README.md: base, method, mask, evaluation
        write_json(tmp / "training_log.json", {"steps": result.step_log})
        if result.trajectory:
            trajectory = {"criterion": result.criterion, "points": result.trajectory}
            write_json(tmp / TRAJECTORY_FILE, trajectory | {"selected": result.selected})
        if result.last_state is not None:
            _save_last(result, tmp / "last")
            tokenizer.save_pretrained(tmp / "last")
        if (Path(config.out) / tracking.TRACKING_DIR).is_dir():  # the tracker's event files
            shutil.move(Path(config.out) / tracking.TRACKING_DIR, tmp / tracking.TRACKING_DIR)


def _save_last(result: UnlearnResult, path: Path) -> None:
    """Save the model with the last step's weights, then give it back its selected ones."""
    selected = {n: p.detach().to("cpu", copy=True) for n, p in result.model.named_parameters()}
    selected = {n: selected[n] for n in result.last_state}
    load_state(result.model, result.last_state)
    result.model.save_pretrained(path)
    load_state(result.model, selected)


def _run_record(config: UnlearnConfig, options: Any) -> dict[str, Any]:
    mask = None
    if config.mask:
        mask = {"path": config.mask, "fingerprint": fingerprint(config.mask)}
        mask["metadata"] = mask_metadata(config.mask)
    import transformers

    return {
        "wagle_version": __version__,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "run": cfg.to_dict(config),
        "method_options": dataclasses.asdict(options),
        "mask": mask,
    }
