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
    learning_rate: float | None = None  # the recipe's aggressiveness axes; None: the method's
    epochs: float | None = None

    @property
    def id(self) -> str:
        ratio = "" if self.mask in WHOLE_MODEL_MASKS else f"-r{self.ratio:g}"
        return f"{self.method}-{self.mask}{ratio}{self._axes('-lr', '-e')}-s{self.seed}"

    @property
    def label(self) -> str:
        ratio = "" if self.mask in WHOLE_MODEL_MASKS else f" ρ={self.ratio:g}"
        return (
            f"{self.method} × {self.mask}{ratio}{self._axes(' lr ', ' epochs ')} seed {self.seed}"
        )

    @property
    def search_id(self) -> str:
        """The id without the ratio: what an automatic ratio search of this cell is named."""
        return f"{self.method}-{self.mask}{self._axes('-lr', '-e')}-s{self.seed}"

    def axes(self) -> dict[str, float]:
        """The unlearning options this cell sets (its aggressiveness), by option name."""
        values = {"learning_rate": self.learning_rate, "epochs": self.epochs}
        return {k: v for k, v in values.items() if v is not None}

    def _axes(self, lr: str, epochs: str) -> str:
        prefix = {"learning_rate": lr, "epochs": epochs}
        return "".join(f"{prefix[k]}{v:g}" for k, v in self.axes().items())

    def directory(self, root: Path) -> Path:
        return Path(root) / CELLS_DIR / self.id


def grid(recipe: ExperimentRecipe) -> list[Cell]:
    """The fixed-ratio cells, seed-major (statistics are collected once per seed), then method,
    aggressiveness (learning rate, epochs), mask and ratio."""
    cells = []
    for seed in recipe.seeds:
        for method in recipe.methods:
            for lr, epochs in recipe.axes(method):
                for mask in recipe.masks:
                    ratios = [1.0] if mask in WHOLE_MODEL_MASKS else recipe.ratios
                    cells += [Cell(method, mask, r, seed, lr, epochs) for r in ratios if r != AUTO]
    return list(dict.fromkeys(cells))


def auto_searches(recipe: ExperimentRecipe) -> list[Cell]:
    """Cells (ratio left at 0) whose ratio is searched: every score mask's when ratios has
    auto, for each seed, method and aggressiveness."""
    if AUTO not in recipe.ratios:
        return []
    return [
        Cell(method, mask, 0.0, seed, lr, epochs)
        for seed in recipe.seeds
        for method in recipe.methods
        for lr, epochs in recipe.axes(method)
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
