"""``run_experiment``: every cell of a recipe's grid, resumable, with the automatic ratios.

Seed by seed: the masks of the seed's unfinished cells are selected from one attribution pass
(``masks.MaskBank``; the statistics are freed before any cell trains), then each cell trains
the one loaded model in place from its original weights (``Setup.restore``: a CPU copy, no
deep copy of the model per cell), evaluates the selected checkpoint and writes its directory
(see ``cells``); then the seed's automatic ratio searches run. A finished cell is read, not
recomputed.

Under ``torchrun`` / ``accelerate launch`` the grid would be trained once per process: it is
refused at start (``refuse_several_processes``); run one process per device on different seeds
into the same directory instead.

``optimizer_state: auto`` is resolved once per experiment for weights that are not fp32
(``precision.sweep_optimizer_state``), so that a ratio sweep does not change optimizer
precision half way.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any

from wagle import config as cfg
from wagle.attribution import AttributionConfig
from wagle.data.prompt import with_prompt_format
from wagle.errors import WagleError
from wagle.evaluation import EvalConfig, evaluate, write_eval
from wagle.evaluation.halves import half_forget_qualities
from wagle.experiment.auto_ratio import Probe, search_ratio
from wagle.experiment.cells import RESULT_FILE, Cell, auto_searches, grid, read_result
from wagle.experiment.masks import MaskBank, release_device_memory
from wagle.experiment.precision import sweep_optimizer_state
from wagle.experiment.recipe import LORA, WHOLE_MODEL_MASKS, ExperimentRecipe, recipe_dict
from wagle.experiment.result import CellResult, cell_result
from wagle.experiment.setup import Setup, prepare
from wagle.io import atomic_dir, ensure_writable_dir, fingerprint, hash_config, write_json
from wagle.modelcard import write_cell_card
from wagle.unlearning import unlearn_model
from wagle.unlearning.checkpoints import resumable
from wagle.unlearning.config import UnlearnConfig, method_options
from wagle.unlearning.selective_adamw import use_selective_state

AUTO_DIR = "auto"


def refuse_several_processes() -> None:
    """One line, before anything is loaded or written, when launched on several processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        raise WagleError(
            f"wagle run trains its cells one after another in one process; under torchrun or "
            f"accelerate launch each of the {world} processes would train every cell: start "
            "it without a launcher, one process per device on different seeds into the same "
            "--out if you like (CUDA_VISIBLE_DEVICES=0 wagle run R --out D --seeds 0 & "
            "CUDA_VISIBLE_DEVICES=1 wagle run R --out D --seeds 1)"
        )


def run_experiment(recipe: ExperimentRecipe, out: str | Path, say=print) -> Path:
    """Run (or resume) the experiment of ``recipe`` in ``out``; returns ``out``."""
    refuse_several_processes()
    root = ensure_writable_dir(out)
    write_json(root / "recipe.json", recipe_dict(recipe))
    runner = Runner(prepare(recipe, root, say), say)
    cells, searches = grid(recipe), auto_searches(recipe)
    for seed in recipe.seeds:
        ours = [c for c in cells if c.seed == seed]
        auto = [c for c in searches if c.seed == seed]
        pending = [c for c in ours if c.mask not in WHOLE_MODEL_MASKS and not runner.finished(c)]
        runner.masks.prepare(seed, {(c.mask, c.ratio) for c in pending}, keep=bool(auto))
        for cell in ours:
            runner.run(cell, f"{cells.index(cell) + 1}/{len(cells)}")
        for template in auto:
            runner.auto_ratio(template)
        runner.masks.release(seed)
    return root


class Runner:
    def __init__(self, setup: Setup, say=print) -> None:
        self.setup, self.say = setup, say
        self.start = time.perf_counter()
        self.masks = MaskBank(setup)
        dtype = setup.recipe.loading()[0]
        self.optimizer_state = sweep_optimizer_state(grid(setup.recipe), setup.recipe, dtype)
        self.start_points: dict[str, dict[str, Any]] = {}  # evaluation settings → step-0 point

    # ---- one cell ------------------------------------------------------------------------

    def finished(self, cell: Cell) -> bool:
        directory = cell.directory(self.setup.root)
        config, options = self.unlearn_config(cell, directory)
        config_hash = hash_config(_changed(self.cell_config(cell, config, options), cell))
        return read_result(directory, config_hash) is not None

    def run(self, cell: Cell, position: str = "auto") -> CellResult:
        s, directory = self.setup, cell.directory(self.setup.root)
        config, options = self.unlearn_config(cell, directory)
        config_hash = hash_config(_changed(self.cell_config(cell, config, options), cell))
        if (done := read_result(directory, config_hash)) is not None:
            self.say(f"[{position}] {cell.label}: finished earlier, skipped")
            return done
        resume = config.save_every > 0 and resumable(  # a cell interrupted mid-training
            directory, cfg.to_dict(config), dataclasses.asdict(options)
        )
        if not resume:
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
        seconds: dict[str, float] = {}
        mask, mask_info, seconds["attribute"] = self.mask(cell)
        s.restore()  # the original weights, whatever the previous cell left
        state = "selected" if use_selective_state(
            config.optimizer_state, None if config.lora else mask, s.model, config.optimizer
        ) else "full"  # fmt: skip

        tick = time.perf_counter()
        start = _evaluation_key(config)  # same model, same evaluation: the same step-0 point
        result = unlearn_model(
            s.model, s.tokenizer, s.forget, s.retain, config, options,
            mask=mask, reference=s.reference, out=directory, resume=resume,
            start_point=self.start_points.get(start),
        )  # fmt: skip
        if result.trajectory and result.trajectory[0]["step"] == 0:
            self.start_points.setdefault(start, result.trajectory[0])
        seconds["unlearn"] = time.perf_counter() - tick
        write_json(directory / "config.json", self.cell_config(cell, config, options) | mask_info)

        tick = time.perf_counter()
        model = result.model.eval()
        evaluation = evaluate(model, s.tokenizer, s.eval_config, reference=s.reference)
        write_eval(evaluation, directory)
        seconds["evaluate"] = time.perf_counter() - tick
        if s.recipe.save_model:
            with atomic_dir(directory / "model") as tmp:
                model.save_pretrained(tmp)
                with_prompt_format(s.tokenizer, config.prompt_format).save_pretrained(tmp)
                write_cell_card(tmp, config, options, mask, mask_info, model, evaluation)
        forget = evaluation["sections"].get("forget", {}).get("per_sample", {})
        halves = half_forget_qualities(
            forget.get("question", []), forget.get("truth_ratio", []), s.reference, s.halves
        )
        record = cell_result(
            cell, evaluation, result, seconds, mask_info.get("mask_density"), config_hash,
            optimizer=(config.dtype, state), halves=halves,
        )  # fmt: skip
        write_json(directory / RESULT_FILE, record.to_dict())  # last: the cell is finished
        self.say(progress_line(position, cell, record, time.perf_counter() - self.start))
        del result, model  # the trainer's optimizer state goes with them, before the next cell
        release_device_memory()
        return record

    def unlearn_config(self, cell: Cell, directory: Path) -> tuple[UnlearnConfig, Any]:
        s = self.setup
        run, options = s.recipe.unlearn_options(cell.method)
        fixed = {
            "model": s.model_path,
            "forget": s.data,
            "retain": s.data,
            "forget_split": s.recipe.forget_split,
            "retain_split": s.recipe.retain_split,
            "out": str(directory),
            "seed": cell.seed,
            "lora": cell.mask == LORA,
            "progress": False,
            "run_name": cell.id,  # tracking (report_to): each cell a run of the experiment
            "run_group": s.root.name,
            **cell.axes(),  # the learning rate and epochs of the aggressiveness axes
        }
        floor = {"utility_floor": s.recipe.utility_floor}  # the checkpoint rule's, by default
        config = cfg.build(UnlearnConfig, floor, run, fixed)
        if config.optimizer_state == "auto" and self.optimizer_state and not config.lora:
            config = dataclasses.replace(config, optimizer_state=self.optimizer_state)
        return config, method_options(cell.method, options)

    def cell_config(self, cell: Cell, config: UnlearnConfig, options: Any) -> dict[str, Any]:
        """Everything a cell's result depends on (its hash decides whether to recompute)."""
        s = self.setup
        return {
            # without the axes left unset: cells of recipes without them keep their hash
            "cell": {k: v for k, v in dataclasses.asdict(cell).items() if v is not None},
            "unlearn": {
                k: v
                for k, v in cfg.to_dict(config).items()
                if k not in ("out", "progress", "report_to", "run_name", "run_group")
            },
            "method_options": dataclasses.asdict(options),
            "attribution": None
            if cell.mask in WHOLE_MODEL_MASKS
            else cfg.to_dict(self.attribution_config(cell.mask, cell.seed)),
            "evaluation": cfg.to_dict(s.eval_config),
            "reference": fingerprint(s.reference["path"]),  # its bytes, wherever it lies
        }

    # ---- masks ---------------------------------------------------------------------------

    def attribution_config(self, method: str, seed: int) -> AttributionConfig:
        return self.masks.attribution_config(method, seed)

    def mask(self, cell: Cell) -> tuple[Any, dict[str, Any], float]:
        """(mask or None, what config.json records about it, attribution seconds)."""
        if cell.mask in WHOLE_MODEL_MASKS:
            return None, {"mask": {"method": cell.mask, "ratio": 1.0}}, 0.0
        return self.masks.get(cell.seed, cell.mask, cell.ratio)

    # ---- automatic ratio -----------------------------------------------------------------

    def auto_ratio(self, template: Cell) -> dict[str, Any]:
        """Search the ratio of ``template`` (a cell but for its ratio); writes
        ``DIR/auto/<method>-<mask>[-lr..][-e..]-s<seed>.json``."""
        s = self.setup
        method, mask, seed = template.method, template.mask, template.seed
        target_utility = s.target_eval.get("model_utility") or 0.0
        floor = s.recipe.utility_floor * target_utility
        records: list[CellResult] = []

        def probe(ratio: float) -> Probe:
            record = self.run(dataclasses.replace(template, ratio=ratio))
            records.append(record)
            return Probe(
                ratio,
                record.forget_quality or 0.0,
                record.model_utility or 0.0,
                bool(record.degenerate),
            )

        search = search_ratio(probe, floor)
        summary = {
            "method": method,
            "mask": mask,
            "seed": seed,
            **template.axes(),
            "utility_floor": s.recipe.utility_floor,
            "target_utility": target_utility,
            **search.to_dict(),
            "runs": len(records),
            "seconds": sum(sum(r.seconds.values()) for r in records),
        }
        write_json(s.root / AUTO_DIR / f"{template.search_id}.json", summary)
        self.say(
            f"[auto] {template.search_id}: ratio {search.ratio:g} after "
            f"{len(records)} runs ({search.reason})"
        )
        return summary


# What a trajectory point depends on besides the model and the reference (run.py's
# TrajectoryEvaluator): cells that agree on these share their step-0 point.
EVALUATION_OPTIONS = ("eval_reference", "eval_benchmark", "eval_data", "eval_forget_size",
                      "eval_retain_size", "eval_batch_size", "prompt_format", "dtype")  # fmt: skip


def _evaluation_key(config: UnlearnConfig) -> str:
    return hash_config({k: getattr(config, k) for k in EVALUATION_OPTIONS})


def _changed(cell_config: dict[str, Any], cell: Cell) -> dict[str, Any]:
    """The cell config without the options left at their defaults: what the hash covers, so an
    upgrade that adds an option (with a default) does not invalidate finished cells."""
    defaults = {
        "unlearn": cfg.to_dict(UnlearnConfig()),
        "attribution": cfg.to_dict(AttributionConfig()),
        "evaluation": cfg.to_dict(EvalConfig()),
        "method_options": dataclasses.asdict(type(method_options(cell.method, {}))()),
    }
    trimmed = dict(cell_config)
    for key, default in defaults.items():
        if trimmed.get(key) is not None:
            trimmed[key] = {
                k: v for k, v in trimmed[key].items() if k not in default or default[k] != v
            }
    return trimmed


def progress_line(position: str, cell: Cell, record: CellResult, total_seconds: float) -> str:
    fq, mu, rouge = record.forget_quality, record.model_utility, record.forget_rouge
    fq_text = "n/a" if fq is None else f"{fq:.2g}"
    mu_text = "n/a" if mu is None else f"{mu:.3f}"
    flag = "  DEGENERATE" if record.degenerate else ""
    return (
        f"[{position}] {cell.label}: FQ {fq_text}  utility {mu_text}  forget ROUGE "
        f"{'n/a' if rouge is None else f'{rouge:.3f}'}  step {record.selected_step}"
        f"{flag}  ({sum(record.seconds.values()):.0f} s; {total_seconds / 60:.1f} min in all)"
    )
