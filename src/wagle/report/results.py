"""Saved results of an experiment directory, and their grouping into table rows.

Everything here reads files only: ``DIR/cells/*/result.json`` (one record per finished cell),
``DIR/target/eval.json`` and ``DIR/reference/eval.json`` (the reference points),
``DIR/cells/*/trajectory.json`` and ``DIR/auto/*.json``.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wagle.experiment.cells import CELLS_DIR, finished_results
from wagle.experiment.result import CellResult
from wagle.io import write_json

# The figures of a table row: record key → column heading.
COLUMNS = {
    "forget_quality": "forget quality",
    "log10_forget_quality": "log10 FQ",
    "model_utility": "utility",
    "forget_rouge": "forget ROUGE",
    "retain_rouge": "retain ROUGE",
    "forget_probability": "forget prob.",
    "mia_auc": "MIA AUC",
}
STAGES = ("attribute", "unlearn", "evaluate")
MASK_ORDER = {"dense": 0, "lora": 1}


@dataclass
class Row:
    """One (method, mask, ratio, learning rate, epochs) over its seeds: mean and std of each
    figure (learning rate and epochs: the recipe's aggressiveness axes, None when unset)."""

    method: str
    mask: str
    ratio: float
    learning_rate: float | None
    epochs: float | None
    seeds: list[int]
    mean: dict[str, float | None]
    std: dict[str, float | None]
    degenerate: int  # seeds flagged degenerate
    seconds: dict[str, float]  # mean per stage


def load_records(root: Path) -> tuple[list[CellResult], list[str]]:
    """(every finished cell's record sorted by method, mask, ratio, seed; the ids of cells
    whose result.json could not be read as a record)."""
    records, unreadable = finished_results(root)
    return sorted(records, key=_sort_key), unreadable


def write_results(root: Path, records: list[CellResult]) -> Path:
    """``DIR/results.json``: one record per cell (method, mask, ratio, seed, figures, ...)."""
    path = Path(root) / "results.json"
    write_json(path, [r.to_dict(density=False) for r in records])
    return path


def group(records: list[CellResult]) -> list[Row]:
    """One row per (method, mask, ratio, learning rate, epochs), in record order."""
    groups: dict[tuple, list[CellResult]] = {}
    for r in records:
        groups.setdefault((r.method, r.mask, r.ratio, r.learning_rate, r.epochs), []).append(r)
    rows = []
    for (method, mask, ratio, lr, epochs), members in groups.items():
        mean, std = {}, {}
        for key in COLUMNS:
            values = [v for v in map(_figure(key), members) if v is not None]
            mean[key] = statistics.fmean(values) if values else None
            std[key] = statistics.stdev(values) if len(values) > 1 else None
        seconds = {
            stage: statistics.fmean(r.seconds.get(stage, 0.0) for r in members) for stage in STAGES
        }
        flagged = sum(bool(r.degenerate) for r in members)
        seeds = [r.seed for r in members]
        rows.append(Row(method, mask, ratio, lr, epochs, seeds, mean, std, flagged, seconds))
    return rows


def reference_points(root: Path) -> dict[str, dict[str, float | None]]:
    """``{"target": {...}, "retain": {...}}``: forget quality and utility of each, if saved.

    The retain model's forget quality is 1 by definition (its truth ratios are the reference).
    """
    points = {}
    for name, directory in (("target", "target"), ("retain", "reference")):
        path = Path(root) / directory / "eval.json"
        if path.is_file():
            evaluation = json.loads(path.read_text())
            quality = 1.0 if name == "retain" else evaluation.get("forget_quality")
            points[name] = {
                "forget_quality": quality,
                "model_utility": evaluation.get("model_utility"),
                "forget_rouge": evaluation["summary"]["figures"].get("forget.rouge_l_recall"),
            }
    return points


def trajectories(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Cell id → its trajectory points, the selected one with ``"selected": True``."""
    result = {}
    for path in sorted((Path(root) / CELLS_DIR).glob("*/trajectory.json")):
        if (path.parent / "result.json").is_file():
            saved = json.loads(path.read_text())
            points = saved.get("points") or []
            if points:  # the selected point is flagged for the figure
                step = (saved.get("selected") or {}).get("step")
                result[path.parent.name] = [p | {"selected": p["step"] == step} for p in points]
    return result


def halves(root: Path) -> dict[str, Any] | None:
    """``DIR/halves.json``: the unit, seed and questions of the two forget halves, if saved."""
    path = Path(root) / "halves.json"
    return json.loads(path.read_text()) if path.is_file() else None


def auto_searches(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((Path(root) / "auto").glob("*.json"))]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on both)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (a >= x and b >= y) and (a > x or b > y) for j, (a, b) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def _figure(key: str):
    """``record → value`` of a column; log10 FQ is derived (means of p-values hide the spread)."""
    if key == "log10_forget_quality":
        return lambda r: math.log10(r.forget_quality) if r.forget_quality else None
    return lambda r: getattr(r, key)


def _sort_key(record: CellResult) -> tuple:
    r = record
    axes = (r.learning_rate or 0.0, r.epochs or 0.0)
    return (r.method, MASK_ORDER.get(r.mask, 2), r.mask, r.ratio, *axes, r.seed)


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
