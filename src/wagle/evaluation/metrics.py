"""The uniform shape every metric returns: one aggregate plus the per-sample values behind it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricResult:
    """``aggregate`` summarises ``per_sample`` (one value per record, in record order)."""

    aggregate: float
    per_sample: list[float]
