"""One unlearning run, end to end: load → pair data → (LoRA) → train under the mask → save.

The output directory (written atomically, by the main process only) holds the unlearned model
and tokenizer (``save_pretrained``, safetensors), ``run_config.json`` (the resolved run and
method options, the mask's fingerprint and metadata) and ``training_log.json`` (per step:
loss terms, forget and retain NLL, learning rate).
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments
from transformers.utils import logging as hf_logging

from wagle import __version__
from wagle import config as cfg
from wagle.attribution.masks import load_mask, mask_metadata
from wagle.data.batching import encode_records
from wagle.data.load import read_records
from wagle.data.prompt import use_prompt_format
from wagle.errors import WagleError
from wagle.io import atomic_dir, fingerprint, write_json
from wagle.registry import lookup
from wagle.unlearning.batch import PairCollator, PairedDataset
from wagle.unlearning.config import UnlearnConfig
from wagle.unlearning.devices import accumulation_steps, refuse_sharded_training, world_size
from wagle.unlearning.lora import add_lora, merge_lora
from wagle.unlearning.objective import METHODS
from wagle.unlearning.trainer import MaskedUnlearningTrainer


@dataclass
class UnlearnResult:
    model: torch.nn.Module  # the unlearned plain model (LoRA merged), on its training device
    out: Path
    step_log: list[dict[str, float]]


def unlearn(config: UnlearnConfig, options: Any = None) -> UnlearnResult:
    """Run ``config`` with the method's ``options`` (None: its defaults) and save the result."""
    objective = lookup(METHODS, config.method, "unlearning method")(options)
    refuse_sharded_training()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    use_prompt_format(tokenizer, config.prompt_format)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=getattr(torch, config.dtype))
    mask = load_mask(config.mask, model) if config.mask else None
    forget = objective.forget_records(read_records(config.forget, config.forget_split))
    retain = read_records(config.retain, config.retain_split)
    data = PairedDataset(
        _encode(tokenizer, forget, config), _encode(tokenizer, retain, config), config.seed
    )
    trained = (
        add_lora(model, config.lora_targets, config.lora_rank, config.lora_alpha, mask)
        if config.lora
        else model
    )
    with tempfile.TemporaryDirectory() as scratch:
        trainer = MaskedUnlearningTrainer(
            model=trained,
            args=training_arguments(config, scratch),
            train_dataset=data,
            data_collator=PairCollator(tokenizer.pad_token_id),
            objective=objective,
            mask=None if config.lora else mask,
        )
        objective.prepare(model, data, tokenizer.pad_token_id)
        trainer.train()
    final = merge_lora(trained, mask) if config.lora else model
    if trainer.is_world_process_zero():
        _save(final, tokenizer, config, options or objective.options, trainer.step_log)
    return UnlearnResult(final, Path(config.out), trainer.step_log)


def training_arguments(config: UnlearnConfig, output_dir: str) -> TrainingArguments:
    """The Trainer's arguments for ``config`` (no checkpoints, no reporting)."""
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
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        seed=config.seed,
        data_seed=config.seed,
        logging_strategy="no",
        save_strategy="no",
        report_to="none",
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


def _save(model, tokenizer, config: UnlearnConfig, options: Any, log: list[dict]) -> None:
    with atomic_dir(config.out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "run_config.json", _run_record(config, options))
        write_json(tmp / "training_log.json", {"steps": log})


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
