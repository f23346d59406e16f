"""One evaluation run: benchmark → sections → summary → ``eval.json``.

``eval.json`` holds the run's identity (model path, benchmark, split, full config, wagle
version), every section with its per-sample values, ``forget_quality`` and ``model_utility`` at
the top level, the ``summary`` (see ``wagle.evaluation.summary``) and the reference used. It is
itself a valid ``--reference`` when the evaluated model is a retain model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wagle import __version__
from wagle import config as cfg
from wagle.data.prompt import with_prompt_format
from wagle.errors import WagleError
from wagle.evaluation.benchmarks import resolve
from wagle.evaluation.config import EvalConfig
from wagle.evaluation.summary import load_reference, summarise
from wagle.io import ensure_writable_dir, write_json
from wagle.validate import check_same_questions

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

EVAL_FILE = "eval.json"


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: EvalConfig,
    *,
    reference: dict[str, Any] | None = None,
    model_path: str = "",
) -> dict[str, Any]:
    """Run ``config.benchmark`` on ``model``; the result is what ``eval.json`` holds.

    ``reference`` is a loaded retain-model evaluation; by default ``config.reference`` is read
    (and checked by ``check_inputs``).
    """
    benchmark, config = resolve(config)
    tokenizer = with_prompt_format(tokenizer, config.prompt_format)
    if reference is None and config.reference:
        config, reference = check_inputs(config)
    start = time.perf_counter()
    sections = benchmark.run(model, tokenizer, config)
    summary = summarise(sections, reference)
    return {
        "wagle_version": __version__,
        "model": model_path,
        "benchmark": config.benchmark,
        "split": config.split,
        "config": cfg.to_dict(config),
        "forget_quality": summary["forget_quality"],
        "model_utility": summary["model_utility"],
        "summary": summary,
        "reference": {"path": reference["path"], "model": reference.get("model")}
        if reference
        else None,
        "seconds": round(time.perf_counter() - start, 2),
        "sections": sections,
    }


def check_inputs(config: EvalConfig) -> tuple[EvalConfig, dict[str, Any] | None]:
    """Before any model is loaded: the benchmark and its data, and the reference evaluation,
    which must cover the same benchmark, split and forget questions. Returns the resolved
    config (default split filled in) and the loaded reference (None without one)."""
    benchmark, config = resolve(config)
    questions = benchmark.check(config)
    if not config.reference:
        return config, None
    reference = load_reference(config.reference, config.benchmark, config.split)
    theirs = reference["sections"].get("forget", {}).get("per_sample", {}).get("question")
    if questions is not None and theirs is not None:
        check_same_questions(questions, theirs, reference["path"])
    return config, reference


def refuse_several_processes() -> None:
    """Evaluation runs on one process (one device): a launch with several is a user error,
    rather than N processes each writing the same eval.json."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise WagleError(
            "wagle evaluate runs on one process (one device); start it without torchrun or "
            "accelerate launch (a 7B model fits one GPU in bfloat16: --dtype bfloat16)"
        )


def write_eval(result: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``out_dir/eval.json`` atomically; other files in ``out_dir`` are left alone."""
    path = ensure_writable_dir(out_dir) / EVAL_FILE
    write_json(path, result)
    return path
