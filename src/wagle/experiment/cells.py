"""Cells of the grid and their directories.

One cell = one (unlearning method, mask method, ratio, seed). Its directory
``DIR/cells/<cell id>/`` holds ``config.json`` (what it ran), ``trajectory.json`` (the
unlearning trajectory), ``eval.json`` (the selected checkpoint's evaluation), ``model/`` when
asked, and ``result.json``: the headline record, written atomically and **last**. A cell is
finished exactly when its ``result.json`` exists with the cell's current config hash, so an
interrupted run redoes only the cell it was in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from wagle.experiment.recipe import AUTO, WHOLE_MODEL_MASKS, ExperimentRecipe
from wagle.experiment.result import CellResult, RecordFormatError

RESULT_FILE = "result.json"
CELLS_DIR = "cells"


@dataclass(frozen=True)
class Cell:
    method: str
    mask: str
    ratio: float  # 1.0 for dense and lora
    seed: int

    @property
    def id(self) -> str:
        ratio = "" if self.mask in WHOLE_MODEL_MASKS else f"-r{self.ratio:g}"
        return f"{self.method}-{self.mask}{ratio}-s{self.seed}"

    @property
    def label(self) -> str:
        ratio = "" if self.mask in WHOLE_MODEL_MASKS else f" ρ={self.ratio:g}"
        return f"{self.method} × {self.mask}{ratio} seed {self.seed}"

    def directory(self, root: Path) -> Path:
        return Path(root) / CELLS_DIR / self.id


def grid(recipe: ExperimentRecipe) -> list[Cell]:
    """The fixed-ratio cells, seed-major (statistics are collected once per seed)."""
    cells = []
    for seed in recipe.seeds:
        for method in recipe.methods:
            for mask in recipe.masks:
                if mask in WHOLE_MODEL_MASKS:
                    cells.append(Cell(method, mask, 1.0, seed))
                    continue
                cells += [Cell(method, mask, r, seed) for r in recipe.ratios if r != AUTO]
    return list(dict.fromkeys(cells))


def auto_searches(recipe: ExperimentRecipe) -> list[tuple[str, str, int]]:
    """(method, score mask, seed) whose ratio is searched: all of them when ratios has auto."""
    if AUTO not in recipe.ratios:
        return []
    return [
        (method, mask, seed)
        for seed in recipe.seeds
        for method in recipe.methods
        for mask in recipe.masks
        if mask not in WHOLE_MODEL_MASKS
    ]


def read_result(directory: Path, config_hash: str | None = None) -> CellResult | None:
    """The cell's result if it finished (with ``config_hash``, when given), else None; a
    ``result.json`` of another format counts as unfinished (the cell is recomputed)."""
    path = Path(directory) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        result = CellResult.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, RecordFormatError):
        return None
    if config_hash is not None and result.config_hash != config_hash:
        return None
    return result


def finished_results(root: Path) -> tuple[list[CellResult], list[str]]:
    """(every finished cell's result under ``root`` in cell-id order, the ids of cells whose
    ``result.json`` is unreadable or of another format)."""
    results, unreadable = [], []
    for path in sorted((Path(root) / CELLS_DIR).glob(f"*/{RESULT_FILE}")):
        result = read_result(path.parent)
        if result is None:
            unreadable.append(path.parent.name)
        else:
            results.append(result)
    return results, unreadable
