"""Train playground models from scratch on QA records with the transformers Trainer.

Several models (the target and its retain models) train at once, one process each with its
share of the CPU cores: tiny models scale poorly across threads, and two jobs fighting over
the same cores with several threads each slow down by an order of magnitude (DESIGN.md §6).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import queue as queue_lib
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import (
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging

from wagle.data.collate import collate
from wagle.data.load import Record
from wagle.data.prompt import encode_qa
from wagle.evaluation.generation import generate_answers
from wagle.evaluation.rouge import rouge_l
from wagle.io import atomic_dir, write_json
from wagle.models import load_pretrained, load_tokenizer
from wagle.playground.model import ModelSize, llama_config

# Bump when train_model changes what it trains: the playground cache key includes it.
# (Version 2 grouped batches by length: 10% faster, but batches of one question type
# trained far worse, final loss 0.91 against 0.06.)
RECIPE_VERSION = 3


@dataclass(frozen=True)
class TrainingJob:
    """One model to train: its records, where it goes, and the shared recipe."""

    name: str
    records: list[Record]
    out_dir: Path
    tokenizer_dir: Path
    size: ModelSize
    seed: int
    epochs: int | None
    probe: dict[str, list[Record]]  # split → records whose answers the trained model is asked


def train_model(
    records: list[Record],
    tokenizer: PreTrainedTokenizerBase,
    size: ModelSize,
    *,
    seed: int,
    epochs: int | None = None,
    progress: bool = True,
    callbacks: list[TrainerCallback] | None = None,
) -> tuple[LlamaForCausalLM, list[float]]:
    """A randomly initialised Llama trained on the answers of ``records``.

    Returns the model and its logged training losses (two per epoch).
    """
    torch.manual_seed(seed)
    special = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    model = LlamaForCausalLM(
        llama_config(size, len(tokenizer), tokenizer.model_max_length, special)
    )
    examples = [encode_qa(tokenizer, r["question"], r["answer"]) for r in records]
    steps_per_epoch = -(-len(examples) // size.batch_size)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=size.batch_size,
            num_train_epochs=epochs or size.epochs,
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
            callbacks=callbacks,
        )
        if not progress:  # quiet, or a worker whose parent draws the bars: no printed logs
            trainer.remove_callback(PrinterCallback)
        trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return model.eval(), losses


JobResult = tuple[float, dict[str, float]]  # (seconds, mean ROUGE-L recall per probed split)


def run_jobs(
    jobs: list[TrainingJob], processes: int, progress: bool = True
) -> dict[str, JobResult]:
    """Train, save and probe every job; returns each one's result, by name."""
    if processes <= 1 or len(jobs) <= 1:
        return {job.name: _train_and_save(job, progress=progress) for job in jobs}
    processes = min(processes, len(jobs))
    threads = max(1, (os.cpu_count() or 1) // processes)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(processes, mp_context=context) as pool:
        updates = manager.Queue()
        futures = {
            job.name: pool.submit(_train_and_save, job, False, threads, updates) for job in jobs
        }
        _show_progress(jobs, futures, updates, progress)
        return {name: future.result() for name, future in futures.items()}


def _train_and_save(
    job: TrainingJob, progress: bool, threads: int = 0, updates: queue_lib.Queue | None = None
) -> JobResult:
    """Train one job, write ``out_dir`` atomically (model, tokenizer, log), then probe it."""
    if threads:
        torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    start = time.perf_counter()
    tokenizer = load_tokenizer(job.tokenizer_dir)
    callbacks = [_ReportSteps(job.name, updates)] if updates is not None else None
    model, losses = train_model(
        job.records, tokenizer, job.size, seed=job.seed, epochs=job.epochs,
        progress=progress, callbacks=callbacks,
    )  # fmt: skip
    with atomic_dir(job.out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "training_log.json", {"losses": losses, "n_records": len(job.records)})
    seconds = round(time.perf_counter() - start, 1)
    return seconds, probe_recall(model, job.probe, progress, tokenizer)


def probe_recall(
    model: LlamaForCausalLM | Path,
    probe: dict[str, list[Record]],
    progress: bool = True,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> dict[str, float]:
    """Mean greedy ROUGE-L recall of a model (or model directory) on each probed split."""
    if isinstance(model, Path):
        model, tokenizer = load_pretrained(model, device=None)
    figures = {}
    for split, records in probe.items():
        questions = [r["question"] for r in records]
        answers = generate_answers(model, tokenizer, questions, progress=progress)
        scores = rouge_l(answers, [r["answer"] for r in records])
        figures[split] = round(sum(scores) / len(scores), 4)
    return figures


class _ReportSteps(TrainerCallback):
    """Sends (name, step, total) to the parent process, which draws the progress bars."""

    def __init__(self, name: str, updates: queue_lib.Queue) -> None:
        self.name, self.updates = name, updates

    def on_step_end(self, args, state, control, **kwargs):
        self.updates.put((self.name, state.global_step, state.max_steps))


def _show_progress(jobs, futures, updates, progress: bool) -> None:
    bars = {
        job.name: tqdm(desc=f"training {job.name}", position=i, disable=not progress, unit="step")
        for i, job in enumerate(jobs)
    }
    while not all(f.done() for f in futures.values()):
        try:
            name, step, total = updates.get(timeout=0.5)
        except queue_lib.Empty:
            continue
        bars[name].total = total
        bars[name].update(step - bars[name].n)
    for bar in bars.values():
        bar.close()
