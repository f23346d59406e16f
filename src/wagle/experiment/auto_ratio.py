"""Automatic ratio: the highest forget quality whose utility meets a floor, in few runs.

The search (every probe is one unlearning run under a mask selected from the *same* scores):

1. coarse: ρ ∈ {0.15, 0.35, 0.55, 0.75, 0.95} (step 0.2, covering 0.05–0.95);
2. refine around the best so far: probe best ± 0.1, then best ± 0.05 (inside [0.05, 0.95]).

The best probe is the feasible one (utility ≥ floor and not degenerate) with the highest
forget quality, ties to the higher utility; if none is feasible, the one with the highest
utility (and the record says the floor was not met). At most 9 runs instead of the 19 of a
full sweep at 0.05 resolution; on a unimodal response it finds the sweep's optimum whenever
that lies within 0.15 of the best coarse point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

COARSE = (0.15, 0.35, 0.55, 0.75, 0.95)
REFINE = (0.1, 0.05)
LOW, HIGH = 0.05, 0.95


@dataclass(frozen=True)
class Probe:
    ratio: float
    forget_quality: float
    utility: float
    degenerate: bool = False


@dataclass
class RatioSearch:
    ratio: float
    floor: float
    met_floor: bool
    probes: list[Probe] = field(default_factory=list)  # in the order they were run
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search_ratio(
    probe: Callable[[float], Probe],
    floor: float,
    coarse: tuple[float, ...] = COARSE,
    refine: tuple[float, ...] = REFINE,
    low: float = LOW,
    high: float = HIGH,
) -> RatioSearch:
    """Search ρ; ``probe(ρ)`` runs (or reads) one cell. ``floor`` is an absolute utility."""
    probes: dict[float, Probe] = {}

    def measure(ratio: float) -> None:
        ratio = round(ratio, 4)
        if low - 1e-9 <= ratio <= high + 1e-9 and ratio not in probes:
            probes[ratio] = probe(ratio)

    for ratio in coarse:
        measure(ratio)
    best = best_probe(probes.values(), floor)
    for step in refine:
        for ratio in (best.ratio - step, best.ratio + step):
            measure(ratio)
        best = best_probe(probes.values(), floor)
    met = feasible(best, floor)
    reason = (
        f"highest forget quality ({best.forget_quality:.3g}) among the {len(probes)} probed "
        f"ratios with utility ≥ {floor:.4g} and no degeneration"
        if met
        else f"no probed ratio met utility ≥ {floor:.4g} without degeneration; "
        f"chose the highest utility ({best.utility:.4g})"
    )
    return RatioSearch(best.ratio, floor, met, list(probes.values()), reason)


def feasible(p: Probe, floor: float) -> bool:
    return p.utility >= floor and not p.degenerate


def best_probe(probes, floor: float) -> Probe:
    probes = list(probes)
    eligible = [p for p in probes if feasible(p, floor)]
    if eligible:
        return max(eligible, key=lambda p: (p.forget_quality, p.utility))
    return max(probes, key=lambda p: (p.utility, p.forget_quality))
