"""Build and cache the playground: data → tokenizer → target model → retain model(s) → figures.

Artefacts live in ``<wagle home>/playground/<key>/``, keyed by the configuration. Each one is
written atomically and skipped when already present, so an interrupted build resumes and a
repeated build returns in seconds; ``info.json`` is written last and marks a complete build.
"""

from __future__ import annotations

import json
import shutil
import time
from typing import Any

from transformers.utils import logging as hf_logging

from wagle import config as cfg
from wagle.data import playground as benchmark
from wagle.data.load import load_qa
from wagle.errors import WagleError
from wagle.io import atomic_dir, ensure_writable_dir, write_json
from wagle.playground.config import PlaygroundConfig
from wagle.playground.model import SIZES
from wagle.playground.tokenizer import train_tokenizer
from wagle.playground.train import TrainingJob, probe_recall, run_jobs

MAX_LENGTH = 256
RECALL_SAMPLE = 400  # retain records scored for the build report (forget splits are scored whole)


def build_playground(
    config: PlaygroundConfig, *, force: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Build what is missing (everything with ``force``) and return the info record."""
    root = config.directory()
    if force and root.exists():
        shutil.rmtree(root)
    ensure_writable_dir(root)
    if (root / "info.json").exists():
        return load_info(config)
    hf_logging.disable_progress_bar()
    timings: dict[str, float] = {}
    start = time.perf_counter()

    if not (root / "data").exists():
        with atomic_dir(root / "data") as tmp:
            benchmark.write(benchmark.generate(config.benchmark_spec()), tmp)
    splits = {p.stem: load_qa(p, for_eval=True) for p in sorted((root / "data").glob("*.jsonl"))}
    if not (root / "tokenizer").exists():
        corpus = (_texts(r) for records in splits.values() for r in records)
        with atomic_dir(root / "tokenizer") as tmp:
            train_tokenizer(corpus, config.vocab_size, MAX_LENGTH).save_pretrained(tmp)

    names = {"target": None} | {f"retain-{s}": s for s in config.retain_splits}
    probe = _probe_records(splits, config.retain_splits)
    jobs = [
        TrainingJob(name, _training_records(splits, {split} - {None}), root / name,
                    root / "tokenizer", SIZES[config.size], config.seed, config.epochs or None,
                    probe)
        for name, split in names.items()
        if not (root / name).exists()
    ]  # fmt: skip
    _log(progress, f"training {', '.join(j.name for j in jobs) or 'nothing (cached)'}")
    results = run_jobs(jobs, config.jobs, progress)
    timings |= {f"train_{name}": seconds for name, (seconds, _) in results.items()}
    report = {
        name: results[name][1] if name in results else probe_recall(root / name, probe, progress)
        for name in names
    }
    timings["total"] = round(time.perf_counter() - start, 1)

    info = {
        "config": cfg.to_dict(config),
        "data": str(root / "data"),
        "tokenizer": str(root / "tokenizer"),
        "target": str(root / "target"),
        "retain": str(root / f"retain-{config.retain_splits[0]}") if config.retain_splits else None,
        "retain_models": {s: str(root / f"retain-{s}") for s in config.retain_splits},
        "rouge_l_recall": report,
        "build_seconds": timings,
    }
    write_json(root / "info.json", info)
    return info


def load_info(config: PlaygroundConfig) -> dict[str, Any]:
    """The info record of a finished build; a user error if none exists for ``config``."""
    path = config.directory() / "info.json"
    if not path.exists():
        raise WagleError(
            f"no playground built for this configuration; run `wagle playground build` (looked in {path.parent})"
        )
    return json.loads(path.read_text())


def _training_records(splits: dict[str, list], excluded: set[str]) -> list[dict]:
    """Every trainable record (authors and real-world sets) minus the excluded forget split."""
    forget = {(r["question"], r["answer"]) for s in excluded for r in splits[s]}
    records = [r for s in benchmark.TRAIN_SPLITS for r in splits[s]]
    return [r for r in records if (r["question"], r["answer"]) not in forget]


def _probe_records(splits: dict[str, list], forget_splits: list[str]) -> dict[str, list]:
    """What the build report scores: each forget split whole, its retain complement sampled."""
    probe = {}
    for forget in forget_splits:
        retain = f"retain{100 - int(forget[-2:])}"
        step = max(1, len(splits[retain]) // RECALL_SAMPLE)
        probe |= {forget: splits[forget], retain: splits[retain][::step]}
    return probe


def _texts(record: dict) -> str:
    return " ".join(
        [
            record["question"],
            record["answer"],
            record["paraphrased_answer"],
            *record["perturbed_answer"],
        ]
    )


def _log(progress: bool, message: str) -> None:
    if progress:
        print(f"[wagle] {message}", flush=True)
