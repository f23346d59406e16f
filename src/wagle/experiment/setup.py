"""What every cell of an experiment shares, loaded once: the original model, the data, the
evaluation settings and the two reference evaluations (retain model and target).

``DIR/reference/eval.json`` (the retain model) and ``DIR/target/eval.json`` (the original
model, against that reference) are computed on the first run and read afterwards.

The model is loaded once, in the recipe's ``dtype``, and every cell trains it in place: a CPU
copy of its weights (``Setup.original``, 13.5 GB for a bf16 7B model, in host memory) is
taken once and copied back before each cell (``restore``), instead of a deep copy of the
model per cell on the device.
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
from wagle.evaluation.benchmarks import BENCHMARKS, qa_sets
from wagle.evaluation.halves import SPLIT_SEED, forget_halves, split_unit
from wagle.experiment.recipe import ExperimentRecipe
from wagle.io import write_json
from wagle.models import load_pretrained
from wagle.registry import lookup

HALVES_FILE = "halves.json"


@dataclass
class Setup:
    recipe: ExperimentRecipe
    root: Path
    model_path: str
    data: str
    model: torch.nn.Module  # trained in place by each cell; ``restore`` gives back the original
    tokenizer: Any
    forget: list
    retain: list
    eval_config: EvalConfig
    reference: dict[str, Any]
    target_eval: dict[str, Any]
    original: dict[str, tuple[torch.Tensor, bool]]  # name → (CPU copy, requires_grad)
    halves: dict[str, str]  # forget question → "a" | "b" (evaluation.halves); {} without QA

    @torch.no_grad()
    def restore(self) -> None:
        """Put the original weights back into ``model`` (and undo what a Trainer switched on)."""
        for name, param in self.model.named_parameters():
            value, trainable = self.original[name]
            param.copy_(value)
            param.requires_grad_(trainable)
        if getattr(self.model, "is_activation_checkpointing", False):  # transformers 5 names
            self.model.activation_checkpointing_disable()


def prepare(recipe: ExperimentRecipe, root: Path, say=print) -> Setup:
    """Resolve paths (playground defaults), load model and data, evaluate the references."""
    model_path, retain_path, data = _paths(recipe)
    dtype, remote = recipe.loading()
    eval_config = cfg.build(
        EvalConfig,
        {"benchmark": recipe.benchmark, "split": recipe.forget_split, "data": data},
        recipe.evaluation,
        {"dtype": dtype},  # the one dtype of the experiment: every model is loaded in it
    )
    reference = _reference(recipe, root, retain_path, eval_config, say)
    model, tokenizer = load_pretrained(model_path, dtype=dtype, trust_remote_code=remote)
    target_eval = _cached_eval(
        root / "target", model, tokenizer, eval_config, reference, model_path, "target", say
    )
    original = {n: (p.detach().to("cpu", copy=True), p.requires_grad)
                for n, p in model.named_parameters()}  # fmt: skip
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
        original,
        _halves(eval_config, root),
    )


def _halves(config: EvalConfig, root: Path) -> dict[str, str]:
    """The fixed halves of the evaluated forget questions (the trajectory splits the same),
    recorded in ``DIR/halves.json`` for the report."""
    if lookup(BENCHMARKS, config.benchmark, "benchmark").qa_sets is None:
        return {}
    records = qa_sets(config.benchmark, config.split, config.data)["forget"][2]
    halves = forget_halves(records)
    record = {"unit": split_unit(records), "seed": SPLIT_SEED}
    record |= {h: [q for q, side in halves.items() if side == h] for h in "ab"}
    write_json(root / HALVES_FILE, record)
    return halves


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
        remote = recipe.loading()[1]
        model, tokenizer = load_pretrained(
            retain_path, dtype=eval_config.dtype, trust_remote_code=remote
        )
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
