"""``run_experiment``: every cell of a recipe's grid, resumable, then the automatic ratios.

Per seed, the attribution statistics (the forget and retain gradient passes every score
method of the recipe needs) are collected once, on the original model, and every mask method
and ratio of that seed is selected from them. Each cell unlearns a fresh copy of the original
model in memory (nothing is reloaded between stages), evaluates the selected checkpoint, and
writes its directory (see ``cells``). A finished cell is read, not recomputed.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

from wagle import config as cfg
from wagle.attribution import SCORES, Attribution, AttributionConfig, collect_statistics
from wagle.attribution.eligible import eligible_names
from wagle.attribution.gradients import RETAIN_GRAD
from wagle.attribution.masks import density, layer_of
from wagle.attribution.pipeline import encode_forget, encode_retain
from wagle.evaluation import EvalConfig, evaluate, write_eval
from wagle.experiment.auto_ratio import Probe, search_ratio
from wagle.experiment.cells import RESULT_FILE, Cell, auto_searches, grid, read_result
from wagle.experiment.recipe import LORA, WHOLE_MODEL_MASKS, ExperimentRecipe, recipe_dict
from wagle.experiment.result import CellResult, cell_result
from wagle.experiment.setup import Setup, prepare
from wagle.io import atomic_dir, ensure_writable_dir, fingerprint, hash_config, write_json
from wagle.modelcard import write_cell_card
from wagle.unlearning import unlearn_model
from wagle.unlearning.checkpoints import resumable
from wagle.unlearning.config import UnlearnConfig, method_options

AUTO_DIR = "auto"


def run_experiment(recipe: ExperimentRecipe, out: str | Path, say=print) -> Path:
    """Run (or resume) the experiment of ``recipe`` in ``out``; returns ``out``."""
    root = ensure_writable_dir(out)
    write_json(root / "recipe.json", recipe_dict(recipe))
    runner = Runner(prepare(recipe, root, say), say)
    cells = grid(recipe)
    for i, cell in enumerate(cells, 1):
        runner.run(cell, f"{i}/{len(cells)}")
    for method, mask, seed in auto_searches(recipe):
        runner.auto_ratio(method, mask, seed)
    return root


class Runner:
    def __init__(self, setup: Setup, say=print) -> None:
        self.setup, self.say = setup, say
        self.start = time.perf_counter()
        self._statistics: dict[int, tuple[list[str], Any, float]] = {}
        self._scores: tuple[tuple[int, str], Any] | None = None

    # ---- one cell ------------------------------------------------------------------------

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

        tick = time.perf_counter()
        result = unlearn_model(
            copy.deepcopy(s.model), s.tokenizer, s.forget, s.retain, config, options,
            mask=mask, reference=s.reference, out=directory, resume=resume,
        )  # fmt: skip
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
                s.tokenizer.save_pretrained(tmp)
                write_cell_card(tmp, config, options, mask, mask_info, model, evaluation)
        record = cell_result(
            cell, evaluation, result, seconds, mask_info.get("mask_density"), config_hash
        )
        write_json(directory / RESULT_FILE, record.to_dict())  # last: the cell is finished
        self.say(progress_line(position, cell, record, time.perf_counter() - self.start))
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
        }
        floor = {"utility_floor": s.recipe.utility_floor}  # the checkpoint rule's, by default
        return cfg.build(UnlearnConfig, floor, run, fixed), method_options(cell.method, options)

    def cell_config(self, cell: Cell, config: UnlearnConfig, options: Any) -> dict[str, Any]:
        """Everything a cell's result depends on (its hash decides whether to recompute)."""
        s = self.setup
        return {
            "cell": dataclasses.asdict(cell),
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
        r = self.setup.recipe
        fixed = {"method": method, "seed": seed, "gamma": [r.gamma], "ratio": [1.0]}
        return cfg.build(AttributionConfig, r.attribution, fixed)

    def mask(self, cell: Cell) -> tuple[Any, dict[str, Any], float]:
        """(mask or None, what config.json records about it, attribution seconds)."""
        if cell.mask in WHOLE_MODEL_MASKS:
            return None, {"mask": {"method": cell.mask, "ratio": 1.0}}, 0.0
        tick = time.perf_counter()
        names, stats, stats_seconds = self.statistics(cell.seed)
        attribution = Attribution(
            self.setup.model, self.attribution_config(cell.mask, cell.seed), names, stats
        )
        key = (cell.seed, cell.mask)
        if self._scores is None or self._scores[0] != key:
            self._scores = (key, attribution.scores())
        scores = self._scores[1]
        mask = attribution.select(scores, cell.ratio)
        layers = {k: a / b for k, (a, b) in density(mask, layer_of).items()}
        meta = attribution.metadata(cell.ratio, attribution.config.gamma[0], scores)
        seconds = stats_seconds + time.perf_counter() - tick
        return mask, {"mask": meta, "mask_density": layers}, seconds

    def statistics(self, seed: int) -> tuple[list[str], Any, float]:
        """(eligible names, statistics, seconds) of ``seed``: one pass for every score method."""
        if seed in self._statistics:
            return self._statistics[seed]
        s = self.setup
        methods = [m for m in s.recipe.masks if m not in WHOLE_MODEL_MASKS]
        needs = frozenset().union(*(SCORES[m].needs for m in methods))
        config = self.attribution_config(methods[0], seed)
        tick = time.perf_counter()
        forget = encode_forget(s.tokenizer, _attribution_records(s.forget), config)
        retain = (
            encode_retain(s.tokenizer, _attribution_records(s.retain), len(forget), config)
            if RETAIN_GRAD in needs
            else []
        )
        names = eligible_names(s.model, config.eligible, config.eligible_pattern)
        stats = collect_statistics(
            s.model, forget, retain, names, needs,
            batch_size=config.batch_size, pad_token_id=s.tokenizer.pad_token_id, progress=False,
            sums=config.gradient_sums, checkpointing=config.gradient_checkpointing,
        )  # fmt: skip
        self._statistics[seed] = (names, stats, time.perf_counter() - tick)
        return self._statistics[seed]

    # ---- automatic ratio -----------------------------------------------------------------

    def auto_ratio(self, method: str, mask: str, seed: int) -> dict[str, Any]:
        """Search the ratio of (method, mask, seed); writes ``DIR/auto/<id>.json``."""
        s = self.setup
        target_utility = s.target_eval.get("model_utility") or 0.0
        floor = s.recipe.utility_floor * target_utility
        records: list[CellResult] = []

        def probe(ratio: float) -> Probe:
            record = self.run(Cell(method, mask, ratio, seed))
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
            "utility_floor": s.recipe.utility_floor,
            "target_utility": target_utility,
            **search.to_dict(),
            "runs": len(records),
            "seconds": sum(sum(r.seconds.values()) for r in records),
        }
        write_json(s.root / AUTO_DIR / f"{method}-{mask}-s{seed}.json", summary)
        self.say(
            f"[auto] {method} × {mask} seed {seed}: ratio {search.ratio:g} after "
            f"{len(records)} runs ({search.reason})"
        )
        return summary


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


def _attribution_records(records: list[dict]) -> list:
    """QA records as they are; raw-text records as their texts."""
    return [r["text"] for r in records] if records and "question" not in records[0] else records
