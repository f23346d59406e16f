"""Each mask's forgetting–utility frontier, and the best forget quality at equal utility.

"Does WAGLE's mask beat dense, random and magnitude?" is answered at equal utility, not at one
learning rate: a (method, mask) is judged by every point it can reach — every trajectory
point of every cell with that method and mask (all ratios, learning rates, epoch budgets and
steps; step 0, the target itself, included: doing nothing is on every frontier).

For a utility level u (a fraction of the target's utility; the target is each trajectory's
step 0, measured on the same evaluation subsets as every point) and one seed, the best point is
the non-degenerate point with utility ≥ u with the highest forget quality, chosen in one of two
modes (``MODES``):

- ``split`` (the headline): chosen by its forget quality on half A of the forget authors,
  reported by its forget quality on half B (``wagle.evaluation.halves``), so that the choice
  among many noisy points (steps × learning rates × ratios) does not inflate the figure;
- ``whole``: chosen and reported on the whole forget split (in-sample, optimistic).

Across seeds: mean ± sample std of log10 forget quality (a p-value of 0 counts as 1e-300).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from wagle.experiment.recipe import DENSE, LORA
from wagle.experiment.result import CellResult

LEVELS = (0.90, 0.95, 0.99)
MODES = ("split", "whole")
TINY = 1e-300  # log10 of a p-value that underflowed to 0
RATIO_FREE = (DENSE, LORA)  # mask methods without a ratio


@dataclass(frozen=True)
class Point:
    method: str
    mask: str
    seed: int
    cell: str
    step: int
    utility: float  # ÷ the cell's step-0 utility
    forget_quality: float | None
    half_a: float | None
    half_b: float | None
    degenerate: bool

    def chosen_by(self, mode: str) -> float | None:
        return self.half_a if mode == "split" else self.forget_quality

    def reported(self, mode: str) -> float | None:
        return self.half_b if mode == "split" else self.forget_quality


@dataclass(frozen=True)
class Best:
    """One (method, mask, level): log10 of the reported forget quality over seeds, and the
    point chosen for each seed."""

    method: str
    mask: str
    level: float
    mean: float | None
    std: float | None
    chosen: dict[int, Point]


def frontier_points(
    records: list[CellResult], trajectories: dict[str, list[dict]], by_ratio: bool = False
) -> list[Point]:
    """Every trajectory point of every finished cell, utility relative to its step 0.
    ``by_ratio``: each ratio of a mask method is a mask of its own (``wagle ρ0.5``), to see
    where along the ratio a mask's frontier comes from."""
    points = []
    for r in records:
        mask = f"{r.mask} ρ{r.ratio:g}" if by_ratio and r.mask not in RATIO_FREE else r.mask
        saved = trajectories.get(r.cell) or []
        start = saved[0] if saved and saved[0]["step"] == 0 else None
        if start is None or not start.get("model_utility"):
            continue  # no step 0 to measure utility against
        for p in saved:
            if p.get("model_utility") is None:
                continue
            points.append(Point(
                r.method, mask, r.seed, r.cell, p["step"],
                p["model_utility"] / start["model_utility"], p.get("forget_quality"),
                p.get("forget_quality_half_a"), p.get("forget_quality_half_b"),
                bool(p.get("degenerate")),
            ))  # fmt: skip
    return points


def best_point(points: list[Point], level: float, mode: str) -> Point | None:
    """The point of highest chosen-by forget quality among the non-degenerate ones with
    utility ≥ ``level``; ties: higher utility, then the earlier step, then the cell id."""
    eligible = [
        p
        for p in points
        if not p.degenerate
        and p.utility >= level - 1e-12
        and p.chosen_by(mode) is not None
        and p.reported(mode) is not None
    ]
    if not eligible:
        return None
    return max(eligible, key=lambda p: (p.chosen_by(mode), p.utility, -p.step, p.cell))


def frontier(points: list[Point], mode: str, levels=LEVELS) -> list[Best]:
    """One ``Best`` per (method, mask, level), in the order the points come."""
    groups: dict[tuple[str, str], dict[int, list[Point]]] = {}
    for p in points:
        groups.setdefault((p.method, p.mask), {}).setdefault(p.seed, []).append(p)
    table = []
    for (method, mask), seeds in groups.items():
        for level in levels:
            chosen = {s: b for s, ps in sorted(seeds.items()) if (b := best_point(ps, level, mode))}
            logs = [log10(b.reported(mode)) for b in chosen.values()]
            mean = statistics.fmean(logs) if logs else None
            std = statistics.stdev(logs) if len(logs) > 1 else None
            table.append(Best(method, mask, level, mean, std, chosen))
    return table


def cells(table: list[Best], levels=LEVELS) -> list[list[str]]:
    """Heading and rows (method, mask): mean ± std of log10 FQ at each level, and the seeds."""
    rows: dict[tuple[str, str], dict[float, Best]] = {}
    for b in table:
        rows.setdefault((b.method, b.mask), {})[b.level] = b
    body = [["method", "mask", *(f"utility ≥ {u:.2f}" for u in levels), "seeds"]]
    for (method, mask), by_level in rows.items():
        seeds = max(len(b.chosen) for b in by_level.values())
        body.append([method, mask, *(_mean_std(by_level[u]) for u in levels), str(seeds)])
    return body


def markdown(table: list[Best], levels=LEVELS) -> list[str]:
    head, *rows = cells(table, levels)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def selections(table: list[Best], mode: str) -> list[str]:
    """Which point each figure comes from: cell, step, utility and both forget qualities."""
    lines = [
        "| method | mask | level | seed | cell | step | utility ÷ target | FQ half A | "
        "FQ half B | FQ whole |",
        "|" + "---|" * 10,
    ]
    for b in table:
        for seed, p in b.chosen.items():
            lines.append(
                f"| {b.method} | {b.mask} | {b.level:.2f} | {seed} | {p.cell} | {p.step} | "
                f"{p.utility:.3f} | {_sci(p.half_a)} | {_sci(p.half_b)} | "
                f"{_sci(p.forget_quality)} |"
            )
    return lines


def log10(value: float) -> float:
    return math.log10(max(value, TINY))


def _mean_std(b: Best) -> str:
    if b.mean is None:
        return "-"
    return f"{b.mean:.1f}" if b.std is None else f"{b.mean:.1f} ± {b.std:.1f}"


def _sci(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"
