"""Build and cache the playground, as TOFU is built: a base model pretrained on a world, then the
target and the retain models fine-tuned from it with one recipe.

Stages and where they live under ``<wagle home>/playground/``:

- ``base-<size>-<key>/`` (shared by every playground seed): ``world/`` (the corpus and the
  real-world sets), ``tokenizer/``, ``model/`` (the base, pretrained on the world);
- ``<size>-seed<seed>-<key>/``: ``data/`` (the fictitious authors' splits and the real-world
  sets), ``target/`` (the base fine-tuned on every fictitious author), ``retain-<split>/`` (the
  base fine-tuned without the forget split), ``retain-<split>-seed<k>/`` (the same with another
  fine-tuning seed: the noise floor), ``fidelity.json`` and, last, ``info.json``.

Every stage is written atomically and skipped when present, so an interrupted build resumes
and a repeated build returns in seconds.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from transformers.utils import logging as hf_logging

from wagle import config as cfg
from wagle.data import playground as benchmark
from wagle.data.load import Record, read_records
from wagle.errors import WagleError
from wagle.io import atomic_dir, ensure_writable_dir, write_json
from wagle.playground.config import PlaygroundConfig
from wagle.playground.model import SIZES
from wagle.playground.tokenizer import train_tokenizer
from wagle.playground.train import TrainingJob, probe_recall, run_jobs

MAX_LENGTH = 256
WORLD_SETS = ("real_authors", "world_facts")
NOISE_SEED_OFFSET = 1000  # the noise-floor retain model's fine-tuning seed: seed + this


def build_playground(
    config: PlaygroundConfig, *, force: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Build what is missing (everything with ``force``) and return the info record."""
    root = config.directory()
    if force:
        for path in (root, config.base_directory()):
            shutil.rmtree(path, ignore_errors=True)
    ensure_writable_dir(root)
    if (root / "info.json").exists():
        return load_info(config)
    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    base, world, seconds = build_base(config, progress)

    if not (root / "data").exists():
        with atomic_dir(root / "data") as tmp:
            benchmark.write(benchmark.generate(config.benchmark_spec(), world), tmp)
    splits = {p.stem: read_records(root / "data", p.stem) for p in (root / "data").glob("*.jsonl")}
    models = _finetune_models(config)
    jobs = [
        _finetune_job(config, base, root, name, splits, world.corpus, excluded, seed)
        for name, (excluded, seed) in models.items()
        if not (root / name).exists()
    ]
    _log(progress, f"fine-tuning {', '.join(j.name for j in jobs) or 'nothing (cached)'}")
    results = run_jobs(jobs, config.jobs, progress)
    seconds |= {f"finetune_{name}": s for name, (s, _) in results.items()}
    recall = {
        name: results[name][1]
        if name in results
        else probe_recall(root / name, _probe(splits), progress)
        for name in models
    }
    info = {
        "config": cfg.to_dict(config),
        "base": str(base / "model"),
        "data": str(root / "data"),
        "tokenizer": str(base / "tokenizer"),
        "target": str(root / "target"),
        "retain": str(root / f"retain-{config.retain_splits[0]}") if config.retain_splits else None,
        "retain_models": {s: str(root / f"retain-{s}") for s in config.retain_splits},
        "rouge_l_recall": recall,
    }
    if config.fidelity:
        from wagle.playground.fidelity import measure_fidelity

        tick = time.perf_counter()
        info["fidelity"] = measure_fidelity(config, info, root / "fidelity.json", progress)
        seconds["fidelity"] = round(time.perf_counter() - tick, 1)
    info["build_seconds"] = seconds | {"total": round(time.perf_counter() - start, 1)}
    write_json(root / "info.json", info)
    return info


def build_base(
    config: PlaygroundConfig, progress: bool = True
) -> tuple[Path, benchmark.World, dict[str, float]]:
    """The world, the tokenizer and the base model (pretrained on the world), cached; returns
    the base directory, the world (regenerated: deterministic and cheap) and training seconds."""
    root = ensure_writable_dir(config.base_directory())
    world = benchmark.generate_world(config.benchmark_spec().world)
    if not (root / "world").exists():
        with atomic_dir(root / "world") as tmp:
            benchmark.write(
                {"corpus": world.corpus} | {s: getattr(world, s) for s in WORLD_SETS}, tmp
            )
    if not (root / "tokenizer").exists():
        with atomic_dir(root / "tokenizer") as tmp:
            texts = (r["question"] + " " + r["answer"] for r in world.corpus)
            train_tokenizer(texts, config.vocab_size, MAX_LENGTH).save_pretrained(tmp)
    if (root / "model").exists():
        return root, world, {}
    size = SIZES[config.size]
    probe = {s: getattr(world, s) for s in WORLD_SETS}
    job = TrainingJob(
        "base", world.corpus, root / "model", root / "tokenizer", size, size.pretrain,
        seed=config.world_seed, probe=probe,
    )  # fmt: skip
    _log(progress, f"pretraining the base model on its world ({len(world.corpus)} records)")
    seconds, recall = run_jobs([job], 1, progress)["base"]
    write_json(root / "base.json", {"rouge_l_recall": recall, "seconds": seconds})
    return root, world, {"pretrain_base": seconds}


def load_info(config: PlaygroundConfig) -> dict[str, Any]:
    """The info record of a finished build; a user error if none exists for ``config``."""
    path = config.directory() / "info.json"
    if not path.exists():
        raise WagleError(
            f"no playground built for this configuration; run `wagle playground build` (looked in {path.parent})"
        )
    return json.loads(path.read_text())


def _finetune_models(config: PlaygroundConfig) -> dict[str, tuple[str | None, int]]:
    """name → (excluded forget split, fine-tuning seed) of every fine-tuned model."""
    models = {"target": (None, config.seed)}
    models |= {f"retain-{s}": (s, config.seed) for s in config.retain_splits}
    if config.fidelity:
        noise_seed = config.seed + NOISE_SEED_OFFSET
        models[f"retain-{config.retain_splits[0]}-seed{noise_seed}"] = (
            config.retain_splits[0],
            noise_seed,
        )
    return models


def _finetune_job(config, base, root, name, splits, world, excluded, seed) -> TrainingJob:
    """Fine-tune the base on every fictitious author but ``excluded``'s, with the world's
    replay: the same recipe for the target and every retain model."""
    forget = {r["question"] for r in splits[excluded]} if excluded else set()
    authors = [r for r in splits["full"] if r["question"] not in forget]
    return TrainingJob(
        name, authors, root / name, base / "tokenizer", SIZES[config.size],
        config.finetune_recipe(), seed=seed, init=base / "model", replay=world,
        probe=_probe(splits),
    )  # fmt: skip


def _probe(splits: dict[str, list[Record]]) -> dict[str, list[Record]]:
    """What the build report scores: the forget10 split whole, its retain complement sampled."""
    retain = splits["retain90"]
    return {"forget10": splits["forget10"], "retain90": retain[:: max(1, len(retain) // 400)]}


def _log(progress: bool, message: str) -> None:
    if progress:
        print(f"[wagle] {message}", flush=True)
