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
    state: dict[
        str, Any
    ]  # CPU copy of the model's tensors (see Sequence): the target between sequences
    target_hash: str  # of the target's tensors' bits
    trainable: dict[str, bool]  # parameter → requires_grad as loaded

    def restore(self):
        """The model with the target's weights, as loaded (``state`` holds the target between
        sequences; a Trainer's switches undone)."""
        import torch

        from wagle.patches import model_tensors

        with torch.no_grad():
            tensors = model_tensors(self.model)
            for name, value in self.state.items():
                tensors[name].copy_(value)
        for name, param in self.model.named_parameters():
            param.requires_grad_(self.trainable[name])
        if self.model.is_activation_checkpointing:
            self.model.activation_checkpointing_disable()
        return self.model


def prepare_study(
    recipe: ExperimentRecipe, section: SequentialSection, root: Path, say=print
) -> Study:
    """Resolve paths (playground defaults), load the target and the data, evaluate the
    references and the target (cached), take the CPU copy of the target."""
    from wagle.experiment.sequential import tensors_hash
    from wagle.patches import model_tensors

    model_path, data, retain_models = _paths(recipe, section)
    dtype, remote = recipe.loading()  # one dtype for every model of the study
    load = {"dtype": dtype, "trust_remote_code": remote}
    requests, last = section.requests, section.requests[-1]
    sets = request_sets({s: load_records(data, s) for s in requests}, requests)
    retain = {
        s: load_records(data, r) for s, r in zip(requests, section.retain_splits, strict=True)
    }
    configs = {
        s: cfg.build(EvalConfig, {"benchmark": recipe.benchmark, "split": s, "data": data},
                     recipe.evaluation, {"dtype": dtype})
        for s in requests
    }  # fmt: skip
    references = {
        s: _reference(section, s, retain_models, configs[s], root, say, load) for s in requests
    }
    model, tokenizer = load_pretrained(model_path, **load)
    target = _cached(root / "target", model_path, "target", configs[last], references[last], say,
                     loaded=(model, tokenizer))  # fmt: skip
    figures = {s: set_figures(target, references[last], sets[s]) for s in requests}
    summary = {"reference": last, "utility": target["model_utility"], "sets": figures}
    write_json(root / "target" / "sets.json", summary)
    state = {n: t.detach().to("cpu", copy=True) for n, t in model_tensors(model).items()}
    return Study(
        recipe, section, root, model_path, data, model, tokenizer,
        sum(t.numel() * t.element_size() for t in state.values()), sets, retain, configs,
        references, target, state, tensors_hash(state),
        {n: p.requires_grad for n, p in model.named_parameters()},
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


def _reference(section, split, retain_models, config, root: Path, say, load) -> dict[str, Any]:
    if split in section.references:
        return load_reference(section.references[split], config.benchmark, split)
    name, directory = f"retain model of {split}", root / "references" / split
    _cached(directory, retain_models[split], name, config, None, say, load=load)
    return load_reference(directory, config.benchmark, split)


def _cached(directory: Path, path, name, config, reference, say, loaded=None, load=None):
    """The evaluation saved in ``directory``, else evaluate the model (``loaded``, or loaded
    from ``path`` with the ``load`` options) and save it."""
    if (directory / "eval.json").is_file():
        return json.loads((directory / "eval.json").read_text())
    say(f"evaluating the {name} ({path}) once for the study ...")
    model, tokenizer = loaded or load_pretrained(path, **(load or {}))
    result = evaluate(model, tokenizer, config, reference=reference, model_path=str(path))
    write_eval(result, directory)
    return result
