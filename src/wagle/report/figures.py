"""The report's figures (PNG, matplotlib's Agg backend: no display needed).

- ``frontier.png``: each mask's forgetting–utility frontier over all its trajectory points
  (``report.frontier``), per method;
- ``pareto.png``: forget quality (log) against model utility, every cell, Pareto front marked,
  target and retain model as reference points;
- ``ratio.png``: forget quality (geometric mean over seeds) and utility (mean) against ratio,
  one line per (method, mask), ±1 std;
- ``trajectories.png``: forget quality and utility against step, one line per cell, a dot on
  the selected checkpoint;
- ``mask_density.png``: the fraction of each layer's weights that each mask selects.
"""

from __future__ import annotations

from pathlib import Path

from wagle.experiment.result import CellResult
from wagle.io import atomic_file
from wagle.report.frontier import Best, Point, frontier, frontier_points, log10
from wagle.report.results import Row, finite, pareto_front

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", ":", "-."]
SHADES = ["Reds", "Greens", "Oranges", "Purples", "Blues", "Greys"]
FLOOR = 1e-300  # forget quality 0 drawn at the bottom of a log axis


def write_figures(
    root: Path,
    records: list[CellResult],
    rows: list[Row],
    references: dict[str, dict],
    trajectories: dict[str, list[dict]],
) -> list[Path]:
    """Write every figure that has data into ``root``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    paths = []
    points = frontier_points(records, trajectories)
    if points:
        paths.append(_frontier(root / "frontier.png", points))
    paths.append(_pareto(root / "pareto.png", records, references))
    if any(r.mask not in ("dense", "lora") for r in rows):
        paths.append(_ratio(root / "ratio.png", rows))
    if trajectories:
        paths.append(_trajectories(root / "trajectories.png", trajectories))
    if any(r.mask_density for r in records):
        paths.append(_density(root / "mask_density.png", records))
    return paths


def _styles(records: list) -> tuple[dict[str, str], dict[str, str]]:
    """(colour per mask, marker per method) of records or rows, stable for a set of names."""
    from matplotlib import colormaps

    masks = list(dict.fromkeys(r.mask for r in records))
    methods = list(dict.fromkeys(r.method for r in records))
    colours = colormaps["tab10"]
    return (
        {m: colours(i % 10) for i, m in enumerate(masks)},
        {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(methods)},
    )


def _frontier(path: Path, points: list[Point]) -> Path:
    """Per method: for each mask, the best log10 forget quality at utility ≥ x × the target's,
    mean over seeds (band: ±1 std); solid: chosen on half A, reported on half B; dotted: chosen
    and reported on the whole split. Dots: every trajectory point (whole-split FQ)."""
    import matplotlib.pyplot as plt
    import numpy as np

    colour, _ = _styles(points)
    methods = list(dict.fromkeys(p.method for p in points))
    low = max(0.5, min(p.utility for p in points))
    levels = [float(x) for x in np.linspace(low, 1.0, 41)]
    fig, axes = plt.subplots(1, len(methods), figsize=(6 * len(methods), 4.5), squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        ours = [p for p in points if p.method == method]
        for mode, style in (("split", "-"), ("whole", ":")):
            for b in _by_mask(frontier(ours, mode, levels)):
                x = [e.level for e in b if e.mean is not None]
                y = np.array([e.mean for e in b if e.mean is not None])
                label = b[0].mask if mode == "split" else None
                ax.plot(x, y, style, color=colour[b[0].mask], lw=1.5, label=label)
                if mode == "split":
                    spread = np.array([e.std or 0.0 for e in b if e.mean is not None])
                    ax.fill_between(x, y - spread, y + spread, color=colour[b[0].mask], alpha=0.15)
        dots = [p for p in ours if p.forget_quality is not None and p.utility >= low]
        ax.scatter([p.utility for p in dots], [log10(p.forget_quality) for p in dots], s=4,
                   c=[colour[p.mask] for p in dots], alpha=0.3)  # fmt: skip
        ax.set_title(method)
        ax.set_xlabel("model utility ÷ the target's (best point at utility ≥ x)")
        ax.set_ylabel("log10 forget quality (higher is better)")
        ax.legend(fontsize=7)
    fig.suptitle(
        "Best forget quality at utility ≥ x × the target's, mean over seeds (band ±1 std)\n"
        "solid: chosen on half A, reported on half B; dotted: in-sample; dots: every point",
        fontsize=10,
    )
    return save_figure(fig, path)


def _by_mask(table: list[Best]) -> list[list[Best]]:
    masks: dict[str, list[Best]] = {}
    for b in table:
        masks.setdefault(b.mask, []).append(b)
    return list(masks.values())


def _pareto(path: Path, records: list[CellResult], references: dict[str, dict]) -> Path:
    import matplotlib.pyplot as plt

    colour, marker = _styles(records)
    fig, ax = plt.subplots(figsize=(7, 5))
    points = [
        (r.model_utility, max(r.forget_quality, FLOOR), r)
        for r in records
        if finite(r.model_utility) and finite(r.forget_quality)
    ]
    seen = set()
    for x, y, r in points:
        label = f"{r.method} × {r.mask}"
        ax.scatter(x, y, color=colour[r.mask], marker=marker[r.method], alpha=0.8,
                   label=None if label in seen else label)  # fmt: skip
        seen.add(label)
    front = pareto_front([(x, y) for x, y, _ in points])
    if front:
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "k--", lw=1,
                label="Pareto front")  # fmt: skip
    for name, style in (("target", "r*"), ("retain", "g*")):
        ref = references.get(name, {})
        if finite(ref.get("model_utility")) and finite(ref.get("forget_quality")):
            ax.plot(ref["model_utility"], max(ref["forget_quality"], FLOOR), style,
                    markersize=14, label=f"{name} model")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("model utility (higher is better)")
    ax.set_ylabel("forget quality, KS p-value (log; higher is better)")
    ax.set_title("Forgetting against utility, every cell")
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, path)


def _ratio(path: Path, rows: list[Row]) -> Path:
    """Colour = mask method, line style = unlearning method; dense and LoRA are horizontal."""
    import matplotlib.pyplot as plt

    colour, _ = _styles(rows)
    methods = list(dict.fromkeys(r.method for r in rows))
    dashes = {m: LINESTYLES[i % len(LINESTYLES)] for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    lines: dict[tuple, list[Row]] = {}
    for row in rows:
        lines.setdefault((row.method, row.mask, row.learning_rate, row.epochs), []).append(row)
    for (method, mask, lr, epochs), members in lines.items():
        suffix = (f" lr {lr:g}" if lr else "") + (f" {epochs:g} ep." if epochs else "")
        label = f"{method} × {mask}{suffix}"
        style = {"color": colour[mask], "ls": dashes[method], "label": label}
        for ax, key in zip(axes, ("log10_forget_quality", "model_utility"), strict=True):
            values = sorted(_spread(r, key) for r in members if finite(r.mean[key]))
            if not values:
                continue
            if mask in ("dense", "lora"):
                ax.axhline(values[0][1], lw=1, **style)
                continue
            x, y, low, high = zip(*values, strict=True)
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=2, **style)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("forget quality (log; geometric mean)")
    axes[1].set_ylabel("model utility")
    for ax in axes:
        ax.set_xlabel("mask ratio ρ (fraction of weights unlearning may change)")
        ax.set_xlim(0, 1)
    axes[1].legend(fontsize=7)
    fig.suptitle(
        "Forget quality (geometric mean) and utility (mean) against the ratio, ±1 std over seeds"
    )
    return save_figure(fig, path)


def _spread(row: Row, key: str) -> tuple[float, float, float, float]:
    """(ratio, centre, distance down, distance up): ±1 std, in FQ units for log10 FQ."""
    mean, std = row.mean[key], row.std[key] or 0.0
    if key == "log10_forget_quality":
        centre = 10**mean
        return row.ratio, centre, centre - 10 ** (mean - std), 10 ** (mean + std) - centre
    return row.ratio, mean, std, std


def _trajectories(path: Path, trajectories: dict[str, list[dict]]) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for cell, points in trajectories.items():
        steps = [p["step"] for p in points]
        quality = [max(p.get("forget_quality") or FLOOR, FLOOR) for p in points]
        utility = [p.get("model_utility") for p in points]
        (line,) = axes[0].plot(steps, quality, lw=1, label=cell)
        axes[1].plot(steps, utility, lw=1, label=cell, color=line.get_color())
        for i, point in enumerate(points):  # the selected checkpoint: a filled dot
            if point.get("selected"):
                axes[0].plot(steps[i], quality[i], "o", color=line.get_color())
                axes[1].plot(steps[i], utility[i], "o", color=line.get_color())
    axes[0].set_yscale("log")
    axes[0].set_ylabel("forget quality (log)")
    axes[1].set_ylabel("model utility")
    for ax in axes:
        ax.set_xlabel("optimizer step")
    if len(trajectories) <= 20:
        axes[1].legend(fontsize=6)
    fig.suptitle("Unlearning trajectories, one line per cell")
    return save_figure(fig, path)


def _density(path: Path, records: list[CellResult]) -> Path:
    """One line per (mask method, ratio), of its lowest seed; darker = higher ratio."""
    import matplotlib.pyplot as plt
    from matplotlib import colormaps

    masks: dict[tuple[str, float], dict[str, float]] = {}
    for r in sorted(records, key=lambda r: r.seed):  # a mask does not depend on the method
        if r.mask_density:
            masks.setdefault((r.mask, r.ratio), r.mask_density)
    names = list(dict.fromkeys(mask for mask, _ in masks))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (mask, ratio), layers in sorted(masks.items()):
        shade = colormaps[SHADES[names.index(mask) % len(SHADES)]](0.35 + 0.6 * ratio)
        ax.plot(list(layers), list(layers.values()), marker="o", lw=1, color=shade,
                label=f"{mask} ρ={ratio:g}")  # fmt: skip
    ax.set_xlabel("layer ('other': embeddings, final norm, head)")
    ax.set_ylabel("fraction of the layer's weights selected")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=6, ncol=2)
    ax.set_title("Per-layer density of the masks")
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
    return path
