"""Train playground models on QA records with the transformers Trainer: the base from scratch,
the target and retain models from the base.

Several models (the target and its retain models) train at once, one process each with its
share of the CPU cores: tiny models scale poorly across threads, and two jobs fighting over
the same cores with several threads each slow down by an order of magnitude (DESIGN.md §6).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import queue as queue_lib
import random
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from wagle.models import load_model, load_tokenizer
from wagle.playground.model import ModelSize, Recipe, llama_config

# Bump when train_model changes what it trains: the playground cache key includes it.
# (Version 2 grouped batches by length: 10% faster, but batches of one question type
# trained far worse, final loss 0.91 against 0.06. Version 4: a pretrained base.)
RECIPE_VERSION = 4


@dataclass(frozen=True)
class TrainingJob:
    """One model to train: its records, where it goes, and the shared recipe."""

    name: str
    records: list[Record]
    out_dir: Path
    tokenizer_dir: Path
    size: ModelSize
    recipe: Recipe
    seed: int
    # What the build records about the trained model, run in the job's process (picklable:
    # a module-level function or a partial of one): (model, tokenizer) → figures.
    report: Callable[[LlamaForCausalLM, PreTrainedTokenizerBase], dict[str, Any]]
    init: Path | None = None  # the model to start from (None: a random initialisation)
    replay: list[Record] = ()  # a corpus of which ``size.replay`` is mixed into each epoch


def train_model(
    records: list[Record],
    tokenizer: PreTrainedTokenizerBase,
    size: ModelSize,
    recipe: Recipe,
    *,
    seed: int,
    init: Path | None = None,
    replay: list[Record] = (),
    progress: bool = True,
    callbacks: list[TrainerCallback] | None = None,
) -> tuple[LlamaForCausalLM, list[float]]:
    """A Llama of ``size`` (random, or loaded from ``init``) trained on the answers of
    ``records``, plus ``size.replay`` of ``replay`` drawn afresh for each epoch, with
    ``recipe``. Returns the model and its logged losses (two per epoch)."""
    torch.manual_seed(seed)
    if init is None:
        special = {
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        config = llama_config(size, len(tokenizer), tokenizer.model_max_length, special)
        model = LlamaForCausalLM(config)
    else:
        model = load_model(init)  # safetensors only, as every load in wagle
    schedule = _epochs(records, replay, size.replay, recipe.epochs, seed)
    unique = {id(r): r for r in schedule}  # encode each record once, however often it is seen
    encoded = {key: encode_qa(tokenizer, r["question"], r["answer"]) for key, r in unique.items()}
    examples = [encoded[id(r)] for r in schedule]
    steps_per_epoch = -(-len(examples) // (recipe.batch_size * recipe.epochs))
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=recipe.batch_size,
            num_train_epochs=1,  # over every epoch's records (each epoch its own replay)
            learning_rate=recipe.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=min(recipe.warmup_steps, steps_per_epoch),
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


def _epochs(
    records: list[Record], replay: list[Record], share: float, epochs: int, seed: int
) -> list[Record]:
    """``records`` once per epoch, each epoch with its own random ``share`` of ``replay``."""
    rng = random.Random(seed)
    count = round(share * len(replay))
    return [r for _ in range(epochs) for r in [*records, *rng.sample(replay, count)]]


JobResult = tuple[float, dict[str, Any]]  # (training seconds, the job's report)


def run_jobs(
    jobs: list[TrainingJob], processes: int, progress: bool = True
) -> dict[str, JobResult]:
    """Train, save and report on every job; returns each one's result, by name."""
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
    """Train one job, write ``out_dir`` atomically (model, tokenizer, log), then report."""
    if threads:
        torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    start = time.perf_counter()
    tokenizer = load_tokenizer(job.tokenizer_dir)
    callbacks = [_ReportSteps(job.name, updates)] if updates is not None else None
    model, losses = train_model(
        job.records, tokenizer, job.size, job.recipe, seed=job.seed, init=job.init,
        replay=job.replay, progress=progress, callbacks=callbacks,
    )  # fmt: skip
    with atomic_dir(job.out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        log = {"losses": losses, "n_records": len(job.records), "init": job.init and str(job.init)}
        write_json(tmp / "training_log.json", log)
    seconds = round(time.perf_counter() - start, 1)
    return seconds, job.report(model, tokenizer)


def probe_recall(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, probe: dict[str, list[Record]]
) -> dict[str, float]:
    """Mean greedy ROUGE-L recall of ``model`` on each probed split."""
    return {
        split: round(mean_recall(model, tokenizer, records), 4) for split, records in probe.items()
    }


def mean_recall(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, records: list[Record]
) -> float:
    """Mean ROUGE-L recall of ``model``'s greedy answers to ``records``' questions."""
    questions = [r["question"] for r in records]
    answers = generate_answers(model, tokenizer, questions, progress=False)
    scores = rouge_l(answers, [r["answer"] for r in records])
    return sum(scores) / len(scores)


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
