"""A finished cell's headline record: ``CellResult``, built and serialised in one place.

``cell_result`` reads the figures out of the selected checkpoint's evaluation with strict keys:
a summary key or a figure that is renamed in the evaluation package raises here (and fails the
experiment tests) instead of being recorded as ``null`` in every ``result.json``. A figure whose
*section* the benchmark does not have (no MIA section, no QA forget set) is ``None``.

``to_dict`` / ``from_dict`` are the only (de)serialisation: ``result.json`` holds
``to_dict()``, ``results.json`` the same without ``mask_density``. ``from_dict`` refuses unknown
keys and missing required ones (``RecordFormatError``), so a record written under other key
names is never read as a record with empty figures.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# record field → the evaluation figure it holds (``<section>.<aggregate>``)
FIGURES = {
    "forget_rouge": "forget.rouge_l_recall",
    "retain_rouge": "retain.rouge_l_recall",
    "forget_probability": "forget.probability",
    "mia_auc": "mia.min_k_auc",
}


class RecordFormatError(ValueError):
    """A saved record whose keys are not ``CellResult``'s (an older or foreign format)."""


@dataclass(frozen=True)
class CellResult:
    cell: str  # the cell id, e.g. npo-wagle-r0.5-s0
    method: str
    mask: str
    ratio: float  # 1.0 for dense and lora
    seed: int
    forget_quality: float | None  # KS p-value against the reference, whole forget split
    model_utility: float | None
    forget_rouge: float | None
    retain_rouge: float | None
    forget_probability: float | None
    mia_auc: float | None  # Min-K% AUC, forget vs holdout
    privleak: float | None  # MUSE PrivLeak (%) against the reference
    degenerate: bool | None
    selected_step: int | None  # the trajectory's selected checkpoint
    steps: int  # optimizer steps run
    seconds: dict[str, float]  # per stage: attribute, unlearn, evaluate
    config_hash: str  # what the cell depends on (cells.read_result compares it)
    mask_density: dict[str, float] | None = None  # layer → fraction selected
    dtype: str = "float32"  # of the weights trained
    optimizer_state: str | None = None  # "selected" (SelectiveAdamW) or "full" (dense state)
    learning_rate: float | None = None  # the aggressiveness axes (None: the method's own)
    epochs: float | None = None
    forget_quality_half_a: float | None = None  # on half A / B of the forget authors
    forget_quality_half_b: float | None = None  # (wagle.evaluation.halves)

    def to_dict(self, density: bool = True) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        if not density:
            del record["mask_density"]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CellResult:
        fields = dataclasses.fields(cls)
        names = {f.name for f in fields}
        required = {f.name for f in fields if f.default is dataclasses.MISSING}
        if unknown := sorted(set(record) - names):
            raise RecordFormatError(f"unknown key(s) {unknown}")
        if missing := sorted(required - set(record)):
            raise RecordFormatError(f"missing key(s) {missing}")
        return cls(**record)


def cell_result(
    cell, evaluation: dict[str, Any], unlearned, seconds: dict[str, float],
    mask_density: dict[str, float] | None, config_hash: str,
    optimizer: tuple[str, str | None] = ("float32", None),
    halves: dict[str, float | None] | None = None,
) -> CellResult:  # fmt: skip
    """The record of ``cell`` from its selected checkpoint's ``evaluation`` (``eval.json``),
    ``unlearned`` (the ``UnlearnResult``), ``optimizer`` = (weight dtype, optimizer state) and
    ``halves`` (``evaluation.halves.half_forget_qualities`` of the evaluation)."""
    summary = evaluation["summary"]
    selected = unlearned.selected or {}
    degeneration = summary["degeneration"]  # None when the benchmark has no forget answers
    degenerate = selected.get("degenerate") if degeneration is None else degeneration["degenerate"]
    figures = {field: _figure(evaluation, name) for field, name in FIGURES.items()}
    return CellResult(
        cell=cell.id,
        method=cell.method,
        mask=cell.mask,
        ratio=cell.ratio,
        seed=cell.seed,
        forget_quality=summary["forget_quality"],
        model_utility=summary["model_utility"],
        privleak=summary["privleak"],
        degenerate=degenerate,
        selected_step=selected.get("step"),
        steps=len(unlearned.step_log),
        seconds={k: round(v, 2) for k, v in seconds.items()},
        config_hash=config_hash,
        mask_density=mask_density,
        dtype=optimizer[0],
        optimizer_state=optimizer[1],
        learning_rate=cell.learning_rate,
        epochs=cell.epochs,
        **(halves or {}),
        **figures,
    )


def _figure(evaluation: dict[str, Any], name: str) -> float | None:
    """The figure ``<section>.<aggregate>``; None if the benchmark has no such section."""
    section = name.split(".")[0]
    if section not in evaluation["sections"]:
        return None
    return evaluation["summary"]["figures"][name]
