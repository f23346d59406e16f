"""Build and cache the playground, as TOFU is built: a base model pretrained on a world, then the
target and the retain models fine-tuned from it with one recipe.

Stages and where they live under ``<wagle home>/playground/``:

- ``base-<size>-<key>/`` (shared by every playground seed): ``world/`` (the corpus and the
  real-world sets), ``tokenizer/``, ``model/`` (the base, pretrained on the world);
- ``<size>-seed<seed>-<key>/``: ``data/`` (the fictitious authors' splits and the real-world
  sets), ``target/`` (the base fine-tuned on every fictitious author), ``retain-<split>/`` (the
  base fine-tuned without the forget split), with ``--noise-floor`` ``retain-forget10-seed<k>/``
  (the same with another fine-tuning seed), ``evals/<model>/eval.json`` (each fine-tuned model
  evaluated on its forget split, as ``wagle evaluate`` does: the retain model's is a ready
  ``--reference``), ``fidelity.json`` and, last, ``info.json``.

Every stage is written atomically and skipped when present, so an interrupted build resumes
and a repeated build returns in seconds. A build with more retain splits or fidelity checks
adds them to the same directory.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from pathlib import Path
from typing import Any

from transformers.utils import logging as hf_logging

from wagle.data import playground as benchmark
from wagle.data.load import read_records
from wagle.errors import WagleError
from wagle.evaluation import EvalConfig, evaluate, write_eval
from wagle.evaluation.summary import forget_quality
from wagle.io import atomic_dir, ensure_writable_dir, write_json
from wagle.models import load_pretrained
from wagle.playground.config import PlaygroundConfig
from wagle.playground.model import SIZES
from wagle.playground.tokenizer import train_tokenizer
from wagle.playground.train import TrainingJob, probe_recall, run_jobs

MAX_LENGTH = 256
WORLD_SETS = ("real_authors", "world_facts")
NOISE_SEED_OFFSET = 1000  # the noise-floor retain model's fine-tuning seed: seed + this
EVALS = "evals"


def build_playground(
    config: PlaygroundConfig, *, force: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Build what ``config`` needs and is missing (everything with ``force``) and return the
    info record, which lists everything built in this directory so far."""
    root = config.directory()
    if force:
        for path in (root, config.base_directory()):
            shutil.rmtree(path, ignore_errors=True)
    ensure_writable_dir(root)
    built = _read_info(root) or {}
    if built and _covers(built, config):
        return built
    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    base, world, seconds = build_base(config, progress)
    if not (root / "data").exists():
        with atomic_dir(root / "data") as tmp:
            benchmark.write(benchmark.generate(config.benchmark_spec(), world), tmp)
    models = _finetune_models(config)
    seconds |= _finetune(config, base, root, models, world.corpus, progress)

    retain_models = built.get("retain_models", {})
    retain_models |= {s: str(root / f"retain-{s}") for s in config.retain_splits}
    info = {
        "base": str(base / "model"),
        "data": str(root / "data"),
        "tokenizer": str(base / "tokenizer"),
        "target": str(root / "target"),
        "retain": retain_models.get("forget10", next(iter(retain_models.values()), None)),
        "retain_models": retain_models,
        "reference": str(root / EVALS / "retain-forget10" / "eval.json"),
        "models": built.get("models", {}) | _model_figures(root, models),
    } | ({"fidelity": built["fidelity"]} if "fidelity" in built else {})
    if not _covers(info, config):  # the fidelity checks asked for, measured afresh
        from wagle.playground.fidelity import measure_fidelity

        tick = time.perf_counter()
        info["fidelity"] = measure_fidelity(config, info, root / "fidelity.json", progress)
        seconds["fidelity"] = round(time.perf_counter() - tick, 1)
    seconds = built.get("build_seconds", {}) | seconds
    info["build_seconds"] = seconds | {"wall": round(time.perf_counter() - start, 1)}
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
        seed=config.world_seed, report=functools.partial(probe_recall, probe=probe),
    )  # fmt: skip
    _log(progress, f"pretraining the base model on its world ({len(world.corpus)} records)")
    seconds, recall = run_jobs([job], 1, progress)["base"]
    write_json(root / "base.json", {"rouge_l_recall": recall, "seconds": seconds})
    return root, world, {"pretrain_base": seconds}


def evaluate_model(model, tokenizer, *, split: str, data: str, out: Path) -> dict[str, Any]:
    """``wagle evaluate``'s playground evaluation of a fine-tuned model on ``split``, saved in
    ``out`` (a job's report: it runs in the process that trained the model)."""
    result = evaluate(model, tokenizer, EvalConfig(benchmark="playground", split=split, data=data))
    write_eval(result, out)
    return {}


def load_info(config: PlaygroundConfig) -> dict[str, Any]:
    """The info record of a finished build; a user error if none exists for ``config``."""
    info = _read_info(config.directory())
    if info is None:
        raise WagleError(
            "no playground built for this configuration; run `wagle playground build` "
            f"(looked in {config.directory()})"
        )
    return info


def noise_model(config: PlaygroundConfig) -> str:
    return f"retain-forget10-seed{config.seed + NOISE_SEED_OFFSET}"


def _read_info(root: Path) -> dict[str, Any] | None:
    path = root / "info.json"
    return json.loads(path.read_text()) if path.exists() else None


def _covers(info: dict[str, Any], config: PlaygroundConfig) -> bool:
    """Whether a build holds every model and figure that ``config`` asks for."""
    checks = info.get("fidelity", {}).get("checks", {})
    return (
        set(config.retain_splits) <= set(info["retain_models"])
        and (not config.fidelity or bool(checks))
        and (not config.noise_floor or "noise_floor" in checks)
    )


def _finetune_models(config: PlaygroundConfig) -> dict[str, tuple[str | None, int]]:
    """name → (excluded forget split, fine-tuning seed) of every fine-tuned model."""
    models = {"target": (None, config.seed)}
    models |= {f"retain-{s}": (s, config.seed) for s in config.retain_splits}
    if config.noise_floor:  # forget10's retain model with another seed
        models[noise_model(config)] = ("forget10", config.seed + NOISE_SEED_OFFSET)
    return models


def _finetune(config, base, root, models, world, progress) -> dict[str, float]:
    """Fine-tune the missing models from the base (in parallel processes), each on every
    fictitious author but its excluded split's, with the world replayed: one recipe for all.
    Each job then evaluates its model on its split. Returns the training seconds."""
    data = root / "data"
    authors = read_records(data, "full")
    jobs = []
    for name, (excluded, seed) in models.items():
        if (root / name).exists():
            continue
        forget = {r["question"] for r in read_records(data, excluded)} if excluded else set()
        report = functools.partial(
            evaluate_model, split=excluded or "forget10", data=str(data), out=root / EVALS / name
        )
        jobs.append(TrainingJob(
            name, [r for r in authors if r["question"] not in forget], root / name,
            base / "tokenizer", SIZES[config.size], config.finetune_recipe(), seed=seed,
            report=report, init=base / "model", replay=world,
        ))  # fmt: skip
    _log(progress, f"fine-tuning {', '.join(j.name for j in jobs) or 'nothing (cached)'}")
    return {f"finetune_{name}": s for name, (s, _) in run_jobs(jobs, config.jobs, progress).items()}


def _model_figures(root: Path, models: dict[str, tuple[str | None, int]]) -> dict[str, Any]:
    """Headline figures of each fine-tuned model's saved evaluation (evaluated now if an
    interrupted build left it out), with forget quality against its split's retain model."""
    evals = {}
    for name, (excluded, _) in models.items():
        path = root / EVALS / name
        if not (path / "eval.json").exists():
            model, tokenizer = load_pretrained(root / name)
            evaluate_model(model, tokenizer, split=excluded or "forget10", data=str(root / "data"), out=path)  # fmt: skip
        evals[name] = json.loads((path / "eval.json").read_text())
    return {name: _headline(result, evals.get(f"retain-{result['split']}")) for name, result in evals.items()}  # fmt: skip


def _headline(result: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    forget, retain = (result["sections"][s]["aggregates"] for s in ("forget", "retain"))
    quality = forget_quality(result["sections"], reference) if reference else None
    return {
        "split": result["split"],
        "forget_rouge": forget["rouge_l_recall"],
        "forget_probability": forget["probability"],
        "retain_rouge": retain["rouge_l_recall"],
        "model_utility": result["model_utility"],
        "forget_quality": quality,
    }


def _log(progress: bool, message: str) -> None:
    if progress:
        print(f"[wagle] {message}", flush=True)
