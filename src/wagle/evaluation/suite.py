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
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from wagle import __version__
from wagle import config as cfg
from wagle.data.prompt import use_prompt_format
from wagle.errors import WagleError
from wagle.evaluation.benchmarks import BENCHMARKS
from wagle.evaluation.config import EvalConfig
from wagle.evaluation.summary import load_reference, summarise
from wagle.io import ensure_writable_dir, write_json
from wagle.registry import lookup

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

    ``reference`` is a loaded retain-model evaluation; by default ``config.reference`` is read.
    """
    benchmark = lookup(BENCHMARKS, config.benchmark, "benchmark")
    use_prompt_format(tokenizer, config.prompt_format)
    if reference is None and config.reference:
        reference = load_reference(config.reference, config.benchmark, config.split)
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


def load_model(
    path: str | Path, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM (in ``dtype``) and its tokenizer from one directory (or cached hub id), on
    GPU if any. Evaluation runs in one process: :func:`refuse_several_processes`."""
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as err:
        raise WagleError(f"cannot load a model from {path}: {str(err).splitlines()[0]}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), tokenizer


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
