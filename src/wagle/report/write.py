"""``write_report(DIR)``: results.json, the figures and report.md, from saved results alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wagle.errors import WagleError
from wagle.experiment.auto_ratio import Probe, best_probe, feasible
from wagle.experiment.result import CellResult
from wagle.io import atomic_file
from wagle.report import frontier as fr
from wagle.report import results as res
from wagle.report.figures import write_figures
from wagle.report.table import align, markdown_table, text_table

SWEEP = [round(0.05 * i, 2) for i in range(1, 20)]  # the full sweep auto ratio is judged by


@dataclass
class Report:
    path: Path  # report.md
    table: str  # the plain-text table of the cells
    n_cells: int
    frontier: str = ""  # the plain-text split-half frontier table ("" without trajectories)


def write_report(root: str | Path) -> Report:
    """Read ``root``'s finished cells and write ``results.json``, figures and ``report.md``."""
    root = Path(root)
    records, unreadable = res.load_records(root)
    if not records:
        raise WagleError(f"no finished cells in {root} (looked for {root}/cells/*/result.json)")
    res.write_results(root, records)
    rows = res.group(records)
    references = res.reference_points(root)
    figures = write_figures(root, records, rows, references, res.trajectories(root))
    searches = res.auto_searches(root)
    text = _markdown(root, records, rows, references, figures, searches, unreadable)
    path = root / "report.md"
    with atomic_file(path) as handle:
        handle.write(text)
    points = fr.frontier_points(records, res.trajectories(root))
    frontier = align(fr.cells(fr.frontier(points, "split"))) if points else ""
    return Report(path, text_table(rows), len(records), frontier)


def _markdown(root, records, rows, references, figures, searches, unreadable) -> str:
    def listed(key: str) -> str:
        return ", ".join(str(v) for v in dict.fromkeys(getattr(r, key) for r in records))

    lines = [
        f"# Experiment report: {root.name}",
        "",
        f"{len(records)} finished cells: methods {listed('method')}; masks {listed('mask')}; "
        f"ratios {', '.join(f'{v:g}' for v in sorted({r.ratio for r in records}))}; "
        f"seeds {', '.join(map(str, sorted({r.seed for r in records})))}.",
        "",
    ]
    if unreadable:
        lines += [
            f"Left out: {len(unreadable)} cell(s) whose result.json is not a record of this "
            f"version ({', '.join(unreadable)}); `wagle run` recomputes them.",
            "",
        ]
    for name, point in references.items():
        lines.append(
            f"- **{name} model**: forget quality {_fmt(point['forget_quality'], True)}, "
            f"utility {_fmt(point['model_utility'])}, forget ROUGE {_fmt(point['forget_rouge'])}"
        )
    lines += ["", *_frontier_lines(root, records)]
    lines += [
        "## Every cell's selected checkpoint",
        "",
        "Each row's checkpoint is its cell's own selection (the trajectory's rule: the highest "
        "forget quality on the whole forget split among the non-degenerate points with utility "
        "≥ the floor × step 0's), so it is chosen and reported on the same questions; ratios "
        "and learning rates are not chosen here: each is its own row. Mean ± std over seeds. "
        "Forget quality is "
        "the KS p-value against the retain model (1 = indistinguishable from never having seen "
        "the forget set); judge forget ROUGE against the retain model's, not as lower-is-better: "
        "`degenerate` counts seeds whose answers collapsed (repetition, or forget ROUGE far "
        "below the retain model's). Seconds per stage: attribution (the shared gradient pass "
        "plus scoring), unlearning (with its trajectory evaluations), final evaluation.",
        "",
        markdown_table(rows),
        "",
    ]
    lines += _precision_lines(records)
    lines += _pareto_lines(records)
    lines += [f"![{p.stem}]({p.name})" for p in figures] + [""]
    lines += _auto_lines(records, searches)
    lines += _cell_lines(records)
    lines += _selection_lines(root, records)
    return "\n".join(lines) + "\n"


def _pareto_lines(records: list[CellResult]) -> list[str]:
    points = [
        (r.model_utility, r.forget_quality, r)
        for r in records
        if res.finite(r.model_utility) and res.finite(r.forget_quality)
    ]
    front = res.pareto_front([(x, y) for x, y, _ in points])
    cells = ", ".join(
        f"{points[i][2].cell} (FQ {points[i][1]:.2e}, utility {points[i][0]:.3f})" for i in front
    )
    return [f"Pareto front (no cell has both higher forget quality and utility): {cells}.", ""]


def _frontier_lines(root: Path, records: list[CellResult]) -> list[str]:
    """The headline: best forget quality at equal utility, split-half and in-sample, with how
    the points were chosen."""
    trajectories = res.trajectories(root)
    points = fr.frontier_points(records, trajectories)
    if not points:
        return []
    halves = res.halves(root)
    size = (
        f"{len(halves['a'])} and {len(halves['b'])} questions, split by {halves['unit']} "
        f"(seed {halves['seed']}; DIR/halves.json)"
        if halves
        else "halves of the forget questions"
    )
    split, whole = fr.frontier(points, "split"), fr.frontier(points, "whole")
    missing = sum(p.half_a is None for p in points)
    lines = [
        "## Frontier: best forget quality at equal utility",
        "",
        "For each method and mask, every trajectory point of every cell of that mask (all "
        "ratios, learning rates, epoch budgets and steps; step 0, the target, included) is a "
        "candidate. At each utility level u (a fraction of the target's utility, the "
        "trajectories' step 0 on the same evaluation subsets), per seed: among the "
        "non-degenerate points with utility ≥ u, **the point with the highest forget quality "
        "on half A of the forget set is chosen, and its forget quality on half B is reported** "
        f"(the halves: {size}; each a KS test against the retain model's truth ratios on the "
        "same half). The ratio, learning rate and step are thus chosen on A and judged on B. "
        "Figures: log10 forget quality of half B, mean ± std over seeds (a half has fewer "
        "questions, so its p-values are not on the whole split's scale).",
        "",
        *fr.markdown(split),
        "",
        "In-sample, for comparison (chosen and reported on the whole forget split: the maximum "
        "of many noisy p-values, optimistic):",
        "",
        *fr.markdown(whole),
        "",
    ]
    if missing:
        lines += [f"{missing} points lack the half-split forget qualities (cells run by an "
                  "older wagle): they count in-sample only.", ""]  # fmt: skip
    by_ratio = fr.frontier_points(records, trajectories, by_ratio=True)
    groups = {(p.method, p.mask) for p in points}
    if len({(p.method, p.mask) for p in by_ratio}) > len(groups):  # a mask ran at 2+ ratios
        lines += [
            "By ratio (split-half, as above, each ratio of a mask method on its own):",
            "",
            *fr.markdown(fr.frontier(by_ratio, "split")),
            "",
        ]
    return lines


def _precision_lines(records: list[CellResult]) -> list[str]:
    """How the cells trained: weight dtype and optimizer state, and a warning when low-precision
    weights trained under different states (fp32 masters or not: docs of experiment.precision)."""
    counts: dict[tuple[str, str], int] = {}
    for r in records:
        key = (r.dtype, r.optimizer_state or "unrecorded")
        counts[key] = counts.get(key, 0) + 1
    used = "; ".join(f"{d} weights, {s} optimizer state: {n} cells" for (d, s), n in counts.items())
    lines = [f"Training precision: {used}."]
    low = {s for d, s in counts if d != "float32"}
    if len(low) > 1:
        lines.append(
            "**Warning: cells with low-precision weights trained with different optimizer "
            "states** (selected: fp32 masters and moments; full: moments in the weights' dtype, "
            "no masters): their differences mix the mask with the optimizer's precision."
        )
    return [*lines, ""]


def _selection_lines(root: Path, records: list[CellResult]) -> list[str]:
    """The point behind every figure of the split-half frontier table."""
    points = fr.frontier_points(records, res.trajectories(root))
    if not points:
        return []
    return [
        "## Frontier selections (split-half)",
        "",
        *fr.selections(fr.frontier(points, "split"), "split"),
        "",
    ]


def _cell_lines(records: list[CellResult]) -> list[str]:
    """Every cell on its own line, with where its files are."""
    lines = ["## Cells", "", "| cell | forget quality | utility | selected step | degenerate |"]
    lines.append("|---|---|---|---|---|")
    for r in records:
        lines.append(
            f"| [{r.cell}](cells/{r.cell}/) | {_fmt(r.forget_quality, True)} | "
            f"{_fmt(r.model_utility)} | {r.selected_step} | {'yes' if r.degenerate else 'no'} |"
        )
    return [*lines, ""]


def _auto_lines(records: list[CellResult], searches: list[dict[str, Any]]) -> list[str]:
    if not searches:
        return []
    lines = [
        "## Automatic ratio",
        "",
        "| method | mask | seed | chosen ρ | forget quality | utility | runs | seconds | "
        "full sweep: best ρ | its forget quality | runs | seconds | FQ auto / sweep |",
        "|" + "---|" * 13,
    ]
    for s in searches:
        chosen = next(p for p in s["probes"] if p["ratio"] == s["ratio"])
        sweep = _sweep(records, s)
        tail = ["-"] * 5
        if sweep:
            best, runs, seconds = sweep
            share = chosen["forget_quality"] / best.forget_quality if best.forget_quality else 1.0
            tail = [f"{best.ratio:g}", _fmt(best.forget_quality, True), str(runs),
                    f"{seconds:.0f}", f"{share:.2f}"]  # fmt: skip
        lines.append(
            f"| {s['method']} | {s['mask']} | {s['seed']} | {s['ratio']:g} | "
            f"{_fmt(chosen['forget_quality'], True)} | {_fmt(chosen['utility'])} | {s['runs']} | "
            f"{s['seconds']:.0f} | " + " | ".join(tail) + " |"
        )
    lines += [""] + [
        f"- {s['method']} × {s['mask']} seed {s['seed']}: {s['reason']}." for s in searches
    ]
    return [*lines, ""]


def _sweep(records, search) -> tuple[Probe, int, float] | None:
    """The best ratio of a full 0.05 sweep of the same cells, if every one of them finished."""
    cells = {
        r.ratio: r
        for r in records
        if (r.method, r.mask, r.seed) == (search["method"], search["mask"], search["seed"])
    }
    if not all(ratio in cells for ratio in SWEEP):
        return None
    probes = [
        Probe(ratio, cells[ratio].forget_quality or 0.0, cells[ratio].model_utility or 0.0,
              bool(cells[ratio].degenerate))
        for ratio in SWEEP
    ]  # fmt: skip
    best = best_probe(probes, search["floor"])
    if not feasible(best, search["floor"]):
        return None
    seconds = sum(sum(cells[ratio].seconds.values()) for ratio in SWEEP)
    return best, len(SWEEP), seconds


def _fmt(value: Any, scientific: bool = False) -> str:
    if not res.finite(value):
        return "-"
    return f"{value:.2e}" if scientific else f"{value:.3f}"
