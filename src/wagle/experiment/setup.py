"""What every cell of an experiment shares, loaded once: the original model, the data, the
evaluation settings and the two reference evaluations (retain model and target).

``DIR/reference/eval.json`` (the retain model) and ``DIR/target/eval.json`` (the original
model, against that reference) are computed on the first run and read afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wagle import config as cfg
from wagle.data.load import load_qa, load_text, read_records
from wagle.evaluation import EvalConfig, evaluate, load_reference, write_eval
from wagle.experiment.recipe import ExperimentRecipe
from wagle.models import load_pretrained


@dataclass
class Setup:
    recipe: ExperimentRecipe
    root: Path
    model_path: str
    data: str
    model: torch.nn.Module  # the original model, never trained: each cell works on a copy
    tokenizer: Any
    forget: list
    retain: list
    eval_config: EvalConfig
    reference: dict[str, Any]
    target_eval: dict[str, Any]


def prepare(recipe: ExperimentRecipe, root: Path, say=print) -> Setup:
    """Resolve paths (playground defaults), load model and data, evaluate the references."""
    model_path, retain_path, data = _paths(recipe)
    eval_config = cfg.build(
        EvalConfig,
        {"benchmark": recipe.benchmark, "split": recipe.forget_split, "data": data},
        recipe.evaluation,
    )
    reference = _reference(recipe, root, retain_path, eval_config, say)
    model, tokenizer = load_pretrained(model_path)
    target_eval = _cached_eval(
        root / "target", model, tokenizer, eval_config, reference, model_path, "target", say
    )
    return Setup(
        recipe,
        root,
        model_path,
        data,
        model,
        tokenizer,
        load_records(data, recipe.forget_split),
        load_records(data, recipe.retain_split),
        eval_config,
        reference,
        target_eval,
    )


def load_records(source: str, split: str | None) -> list:
    """QA records (dicts with question/answer), or raw-text records ``{"text": ...}``."""
    first = read_records(source, split)[0]
    if "question" in first:
        return load_qa(source, split)
    return [{"text": t} for t in load_text(source, split)]


def _paths(recipe: ExperimentRecipe) -> tuple[str, str, str]:
    """(model, retain model, data), the playground's where the recipe leaves them empty."""
    needs_playground = not (
        recipe.model and recipe.data and (recipe.reference or recipe.retain_model)
    )
    info: dict[str, Any] = {}
    if needs_playground:
        from wagle.playground import PlaygroundConfig, build_playground

        info = build_playground(PlaygroundConfig())
        info["retain"] = info["retain_models"].get(recipe.forget_split, info["retain"])
    return (
        recipe.model or info["target"],
        recipe.retain_model or info.get("retain", ""),
        recipe.data or info["data"],
    )


def _reference(recipe, root: Path, retain_path: str, eval_config, say) -> dict[str, Any]:
    if recipe.reference:
        return load_reference(recipe.reference, eval_config.benchmark, eval_config.split)
    if not (root / "reference" / "eval.json").is_file():
        model, tokenizer = load_pretrained(retain_path)
        _cached_eval(
            root / "reference", model, tokenizer, eval_config, None, retain_path, "retain", say
        )
        del model
    return load_reference(root / "reference", eval_config.benchmark, eval_config.split)


def _cached_eval(directory: Path, model, tokenizer, config, reference, path, name, say):
    file = directory / "eval.json"
    if file.is_file():
        return json.loads(file.read_text())
    say(f"evaluating the {name} model ({path}) once for the experiment ...")
    result = evaluate(model, tokenizer, config, reference=reference, model_path=str(path))
    write_eval(result, directory)
    return result
