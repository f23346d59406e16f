"""What every sequence of a sequential study shares, loaded once: the target, the data cut into
request sets, and per request the evaluation settings and the reference evaluation (the retain
model of the cumulative forget split), plus the target's evaluation against the last one.

Evaluations are cached: ``DIR/references/<split>/eval.json``, ``DIR/target/eval.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wagle import config as cfg
from wagle.errors import WagleError
from wagle.evaluation import EvalConfig, evaluate, load_reference, write_eval
from wagle.experiment.recipe import ExperimentRecipe
from wagle.experiment.requests import request_sets, set_figures
from wagle.experiment.sequential import SequentialSection
from wagle.experiment.setup import load_records
from wagle.io import write_json
from wagle.models import load_pretrained


@dataclass
class Study:
    recipe: ExperimentRecipe
    section: SequentialSection
    root: Path
    model_path: str
    data: str
    model: Any  # the target, never trained: each sequence works on a copy
    tokenizer: Any
    model_bytes: int
    sets: dict[str, list]  # request split → its request set
    retain: dict[str, list]  # request split → the records of its retain split
    eval_configs: dict[str, EvalConfig]  # request split → evaluation on that split
    references: dict[str, dict[str, Any]]  # request split → its retain model's evaluation
    target_eval: dict[str, Any]  # the target on the last split, against the last reference


def prepare_study(
    recipe: ExperimentRecipe, section: SequentialSection, root: Path, say=print
) -> Study:
    model_path, data, retain_models = _paths(recipe, section)
    requests = section.requests
    splits = {s: load_records(data, s) for s in requests}
    retain = {
        s: load_records(data, r) for s, r in zip(requests, section.retain_splits, strict=True)
    }
    configs = {
        s: cfg.build(
            EvalConfig, {"benchmark": recipe.benchmark, "split": s, "data": data}, recipe.evaluation
        )
        for s in requests
    }
    references = {s: _reference(section, s, retain_models, configs[s], root, say) for s in requests}
    model, tokenizer = load_pretrained(model_path, device=None)
    last = requests[-1]
    target_eval = _cached(
        root / "target",
        model_path,
        "target",
        configs[last],
        references[last],
        say,
        (model, tokenizer),
    )
    from wagle.patches import model_tensors

    size = sum(t.numel() * t.element_size() for t in model_tensors(model).values())
    sets = request_sets(splits, requests)
    target_sets = {s: set_figures(target_eval, references[last], sets[s]) for s in requests}
    write_json(
        root / "target" / "sets.json",
        {"reference": last, "utility": target_eval["model_utility"], "sets": target_sets},
    )
    return Study(
        recipe, section, root, model_path, data, model, tokenizer, size, sets, retain,
        configs, references, target_eval,
    )  # fmt: skip


def _paths(recipe: ExperimentRecipe, section: SequentialSection) -> tuple[str, str, dict[str, str]]:
    """(target, data, forget split → retain model), the playground's where the recipe leaves
    them empty (built with a retain model for every request split)."""
    given = {s: p for s, p in section.retain_models.items()}
    covered = all(s in given or s in section.references for s in section.requests)
    if recipe.model and recipe.data and covered:
        return recipe.model, recipe.data, given
    from wagle.playground import PlaygroundConfig, build_playground

    info = build_playground(PlaygroundConfig(retain_splits=list(section.requests)))
    retain_models = info.get("retain_models", {}) | given
    if missing := [
        s for s in section.requests if s not in retain_models and s not in section.references
    ]:
        raise WagleError(f"no retain model for {missing[0]}: set sequential.retain_models")
    return recipe.model or info["target"], recipe.data or info["data"], retain_models


def _reference(section, split, retain_models, config, root: Path, say) -> dict[str, Any]:
    if split in section.references:
        return load_reference(section.references[split], config.benchmark, split)
    _cached(
        root / "references" / split,
        retain_models[split],
        f"retain model of {split}",
        config,
        None,
        say,
    )
    return load_reference(root / "references" / split, config.benchmark, split)


def _cached(directory: Path, path: str, name: str, config, reference, say, loaded=None):
    """The evaluation saved in ``directory``, else evaluate the model (loaded from ``path``
    unless ``loaded`` is given) and save it."""
    if (directory / "eval.json").is_file():
        return json.loads((directory / "eval.json").read_text())
    say(f"evaluating the {name} ({path}) once for the study ...")
    model, tokenizer = loaded or load_pretrained(path, device=None)
    result = evaluate(model, tokenizer, config, reference=reference, model_path=str(path))
    write_eval(result, directory)
    return result
