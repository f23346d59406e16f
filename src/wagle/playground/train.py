"""Train a playground model from scratch on QA records with the transformers Trainer."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerBase, Trainer, TrainingArguments

from wagle.data.collate import collate
from wagle.data.load import Record
from wagle.data.prompt import encode_qa
from wagle.playground.model import ModelSize, llama_config


def train_model(
    records: list[Record],
    tokenizer: PreTrainedTokenizerBase,
    size: ModelSize,
    *,
    seed: int,
    epochs: int | None = None,
    progress: bool = True,
) -> tuple[LlamaForCausalLM, list[float]]:
    """A randomly initialised Llama trained on the answers of ``records``.

    Returns the model and its logged training losses (one per logging step).
    """
    torch.manual_seed(seed)
    special = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    config = llama_config(size, len(tokenizer), tokenizer.model_max_length, special)
    model = LlamaForCausalLM(config)
    examples = [encode_qa(tokenizer, r["question"], r["answer"]) for r in records]
    steps_per_epoch = -(-len(examples) // size.batch_size)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=size.batch_size,
            num_train_epochs=epochs if epochs is not None else size.epochs,
            learning_rate=size.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=min(100, steps_per_epoch),
            weight_decay=0.01,
            logging_steps=max(1, steps_per_epoch // 2),
            save_strategy="no",
            report_to="none",
            use_cpu=not torch.cuda.is_available(),
            seed=seed,
            data_seed=seed,
            disable_tqdm=not progress,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=examples,
            data_collator=functools.partial(collate, pad_token_id=tokenizer.pad_token_id),
        )
        trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return model.eval(), losses


def save_model(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, directory: Path
) -> None:
    """``save_pretrained`` model and tokenizer side by side, so the directory loads on its own."""
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
