"""Sequential forget requests: a recipe's ``sequential`` section, run request after request.

    sequential:
      requests: [forget01, forget05, forget10]   # nested splits → disjoint request sets

``wagle run`` runs a recipe with this section here (``run_sequential``) instead of its grid.
The rest of the recipe is an ordinary experiment recipe (``ExperimentRecipe``): each cell of its
grid (method × mask × ratio × seed) is one *sequence*. A sequence starts from the target and,
for each request k in order (``requests`` explains the sets): attributes on the **current**
model (the forget set of request k against its retain split), selects the request's own mask,
unlearns it (evaluated while it unlearns against the retain model of the cumulative forget
set, whose forget quality picks the checkpoint), writes the request's **patch** (the entries
this request changed, with their old and new values), evaluates the model on the cumulative
split and cuts out the figures of every request set so far (``set_figures``).

Layout: ``DIR/references/<split>/eval.json`` (the retain model of each cumulative split),
``DIR/target/eval.json``, ``DIR/sequences/<cell>/<k>-<split>/`` holding ``patch.safetensors``,
``trajectory.json``, ``eval.json`` and ``result.json`` (written last), and
``DIR/sequences/<cell>/chain.json``: target + P1 + … + Pn equals the final model, so does
their composition, and reverting them in reverse order gives the target back (checked bit for
bit). A finished request is not recomputed: its patch is applied to rebuild the model it left.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wagle import config as cfg
from wagle.errors import WagleError
from wagle.experiment.cells import Cell, grid
from wagle.experiment.recipe import AUTO, LORA, WHOLE_MODEL_MASKS, ExperimentRecipe, recipe_dict
from wagle.experiment.requests import retain_split_of, set_figures
from wagle.io import ensure_writable_dir, fingerprint, hash_config, write_json

SECTION = "sequential"
RESULT_FILE = "result.json"
PATCH_FILE = "patch.safetensors"


@dataclass
class SequentialSection:
    requests: list[str] = cfg.field(
        ["forget01", "forget05", "forget10"],
        "forget splits in the order they are requested; each request forgets the records of its "
        "split that no earlier request covered (the splits must be nested)",
    )
    retain_splits: list[str] = cfg.field(
        [], "the retain split of each request (default: retainNN, the complement of forgetXX)"
    )
    retain_models: dict = cfg.field(
        {},
        "forget split → retain model trained without it (the reference after that request); "
        "default: the playground's, built with these retain splits",
    )
    references: dict = cfg.field(
        {}, "forget split → a saved eval.json of its retain model (then it is not evaluated)"
    )

    def __post_init__(self) -> None:
        if not self.requests or len(set(self.requests)) != len(self.requests):
            raise WagleError("sequential.requests must list distinct forget splits")
        self.retain_splits = self.retain_splits or [retain_split_of(s) for s in self.requests]
        if len(self.retain_splits) != len(self.requests):
            raise WagleError("sequential.retain_splits needs one retain split per request")


def sequential_section(recipe: ExperimentRecipe) -> SequentialSection:
    """The recipe's ``sequential`` section, checked against the rest of the recipe."""
    if not isinstance(recipe.sequential, dict) or not recipe.sequential:
        raise WagleError(f"the {SECTION} section must be a mapping (requests: [...])")
    if recipe.retain_model or recipe.reference:
        raise WagleError(
            "a sequential study takes a retain model per request: set "
            "sequential.retain_models or sequential.references, not retain_model / reference"
        )
    if AUTO in recipe.ratios:
        raise WagleError("ratio auto is not supported in a sequential study; give ratios")
    return cfg.build(SequentialSection, recipe.sequential)


def run_sequential(recipe: ExperimentRecipe, out: str | Path, say=print) -> Path:
    """Run (or resume) every sequence of the study in ``out``, then write its report."""
    from wagle.experiment.sequential_report import write_sequential_report
    from wagle.experiment.sequential_setup import prepare_study

    section = sequential_section(recipe)
    root = ensure_writable_dir(out)
    write_json(root / "recipe.json", recipe_dict(recipe) | {SECTION: dataclasses.asdict(section)})
    study = prepare_study(recipe, section, root, say)
    for i, cell in enumerate(grid(recipe), 1):
        say(f"[{i}/{len(grid(recipe))}] sequence {cell.label}")
        Sequence(study, cell, say).run()
    return write_sequential_report(root)


class Sequence:
    """The requests of one cell, in order, training the study's model in place.

    ``study.state`` is a CPU copy of the model's tensors that moves forward with the requests:
    it holds the model as the previous request left it (each request's patch is made from it
    and then applied to it), and it is reverted to the target when the sequence ends. So one
    model and one host copy serve every sequence, whatever the model's size.
    """

    def __init__(self, study, cell: Cell, say=print) -> None:
        self.study, self.cell, self.say = study, cell, say
        self.root = study.root / "sequences" / cell.id

    def run(self) -> list[dict[str, Any]]:
        from wagle.patches import apply_patch

        model, parent, records = self.study.restore(), None, []
        for k, split in enumerate(self.study.section.requests, 1):
            directory = self.root / f"{k}-{split}"
            config, options = self.unlearn_config(split, directory)
            config_hash = hash_config(self.request_config(split, config, options, parent))
            done = read_request(directory, config_hash)
            if done is not None:  # rebuild the model this request left from its patch
                apply_patch(model, directory / PATCH_FILE)
                self.say(f"  request {k} ({split}): finished earlier, its patch applied")
            else:
                done = self.request(model, k, split, config, options, parent, config_hash)
            apply_patch(self.study.state, directory / PATCH_FILE)
            parent = done["patch"]["result_sha256"]
            records.append(done)
        write_json(self.root / "chain.json", self.check_chain(model))
        return records

    def request(self, model, k, split, config, options, parent, config_hash) -> dict[str, Any]:
        """Attribute, unlearn, patch and evaluate request ``k`` on ``model`` (in place)."""
        from wagle.evaluation import evaluate, write_eval
        from wagle.patches import create_patch, model_tensors
        from wagle.patches.runs import run_metadata
        from wagle.unlearning import unlearn_model

        s, directory = self.study, Path(config.out)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        forget, retain = s.sets[split], s.retain[split]
        seconds: dict[str, float] = {}
        tick = time.perf_counter()
        mask = self.mask(model, forget, retain)
        seconds["attribute"] = time.perf_counter() - tick
        tick = time.perf_counter()
        result = unlearn_model(
            model, s.tokenizer, forget, retain, config, options, mask=mask,
            reference=s.references[split], out=directory,
        )  # fmt: skip
        seconds["unlearn"] = time.perf_counter() - tick
        evaluation = {"criterion": result.criterion, "selected": result.selected}
        metadata = run_metadata(
            cfg.to_dict(config), dataclasses.asdict(options), mask, self.cell.ratio, evaluation
        )
        metadata |= {"request": k, "forget_split": split, "parent_result_sha256": parent}
        patch = create_patch(s.state, model_tensors(model), directory / PATCH_FILE, metadata)
        tick = time.perf_counter()
        evaluation = evaluate(
            model.eval(), s.tokenizer, s.eval_configs[split], reference=s.references[split]
        )
        write_eval(evaluation, directory)
        seconds["evaluate"] = time.perf_counter() - tick
        earlier, last = s.section.requests[:k], s.section.requests[-1]
        record = {
            "cell": self.cell.id, "request": k, "split": split, "n_forget": len(forget),
            "retain_split": s.section.retain_splits[k - 1], "steps": len(result.step_log),
            "selected_step": (result.selected or {}).get("step"),
            "utility": evaluation["model_utility"], "forget_quality": evaluation["forget_quality"],
            "mask": {"method": self.cell.mask, "ratio": self.cell.ratio,
                     "selected": sum(int(m.sum()) for m in mask.values()) if mask else None},
            "patch": patch_record(patch, mask, s.model_bytes),
            "sets": {j: set_figures(evaluation, s.references[split], s.sets[j]) for j in earlier},
            # the same sets against one fixed reference (the last split's retain model), so
            # that a change across requests is not a change of reference
            "sets_last_reference": {
                j: set_figures(evaluation, s.references[last], s.sets[j]) for j in earlier
            },
            "seconds": {name: round(v, 2) for name, v in seconds.items()},
            "config_hash": config_hash,
        }  # fmt: skip
        write_json(directory / RESULT_FILE, record)  # last: the request is finished
        sets = ", ".join(f"{j} FQ {f['forget_quality']:.2g}" for j, f in record["sets"].items())
        self.say(f"  request {k} ({split}): {sets}; utility {record['utility']:.3f}; patch "
                 f"{record['patch']['entries']:,} entries ({record['patch']['bytes_over_model']:.3f} "
                 f"of the model's bytes)")  # fmt: skip
        return record

    def mask(self, model, forget, retain):
        """The request's own mask, attributed on the current model (None: dense or LoRA)."""
        if self.cell.mask in WHOLE_MODEL_MASKS:
            return None
        from wagle.attribution import AttributionConfig, attribute

        r = self.study.recipe
        fixed = {"method": self.cell.mask, "seed": self.cell.seed, "gamma": [r.gamma],
                 "ratio": [self.cell.ratio]}  # fmt: skip
        config = cfg.build(AttributionConfig, r.attribution, fixed)
        attribution = attribute(model, self.study.tokenizer, forget, retain, config, progress=False)
        return attribution.select(attribution.scores(), self.cell.ratio)

    def unlearn_config(self, split: str, directory: Path):
        from wagle.unlearning.config import UnlearnConfig, method_options

        s = self.study
        run, options = s.recipe.unlearn_options(self.cell.method)
        fixed = {
            "model": s.model_path, "forget": s.data, "retain": s.data, "forget_split": split,
            "retain_split": s.section.retain_splits[s.section.requests.index(split)],
            "out": str(directory), "seed": self.cell.seed, "lora": self.cell.mask == LORA,
            "progress": False, **self.cell.axes(),  # the recipe's learning_rates / epochs axes
        }  # fmt: skip
        floor = {"utility_floor": s.recipe.utility_floor}
        return cfg.build(UnlearnConfig, floor, run, fixed), method_options(
            self.cell.method, options
        )

    def request_config(self, split, config, options, parent) -> dict[str, Any]:
        """What a request's result depends on: its hash decides whether to recompute it."""
        s = self.study
        return {
            "cell": {k: v for k, v in dataclasses.asdict(self.cell).items() if v is not None},
            "split": split, "parent_result_sha256": parent,
            "unlearn": {k: v for k, v in cfg.to_dict(config).items() if k not in ("out", "progress")},
            "method_options": dataclasses.asdict(options), "attribution": s.recipe.attribution,
            "gamma": s.recipe.gamma, "evaluation": cfg.to_dict(s.eval_configs[split]),
            "reference": fingerprint(s.references[split]["path"]),
        }  # fmt: skip

    def check_chain(self, final) -> dict[str, Any]:
        """The patches against the final model, bit for bit (by hashes of every tensor's
        bits): ``state`` = the target + P1 … Pn applied in order; reverted in reverse order it
        is the target again; their composition applied to it is the final model. Leaves
        ``state`` holding the target."""
        from wagle.patches import apply_patch, compose_patches, model_tensors, revert_patch

        state, requests = self.study.state, self.study.section.requests
        paths = [self.root / f"{k}-{s}" / PATCH_FILE for k, s in enumerate(requests, 1)]
        final_hash = tensors_hash(model_tensors(final))
        chained = tensors_hash(state) == final_hash
        for path in reversed(paths):
            revert_patch(state, path)
        reverted = tensors_hash(state) == self.study.target_hash
        composed = paths[0]
        for path in paths[1:]:
            composed = compose_patches(composed, path, self.root / "composed.safetensors")
        apply_patch(state, composed)
        once = tensors_hash(state) == final_hash
        revert_patch(state, composed)
        from wagle.patches import open_patch

        return {
            "target_plus_patches_is_final": chained,
            "reverted_is_target": reverted,
            "composed_patch_is_final": once,
            "composed_entries": open_patch(composed).total_entries,
        }


def tensors_hash(tensors) -> str:
    """SHA-256 over every tensor's name and bits, in sorted name order."""
    from wagle.patches.bits import ValuesHash

    digest = ValuesHash()
    for name in sorted(tensors):
        digest.update(name, tensors[name])
    return digest.hexdigest()


def patch_record(patch, mask, model_bytes: int) -> dict[str, Any]:
    """Entries, bytes and where they lie (outside the mask: 0 for a masked run)."""
    outside = 0
    if mask is not None:
        for name in patch.names:
            (index,) = patch.read(name, "index")
            outside += int((~mask[name].reshape(-1)[index.long()]).sum())
    return {
        "entries": patch.total_entries, "bytes": patch.file_bytes,
        "bytes_over_model": patch.file_bytes / model_bytes, "outside_mask": outside,
        "result_sha256": patch.metadata["result"]["values_sha256"],
    }  # fmt: skip


def read_request(directory: Path, config_hash: str) -> dict[str, Any] | None:
    """A finished request's record (with this hash, and its patch on disk), else None."""
    path = directory / RESULT_FILE
    if not (path.is_file() and (directory / PATCH_FILE).is_file()):
        return None
    record = json.loads(path.read_text())
    return record if record.get("config_hash") == config_hash else None
