"""``sequential.png``: does an earlier forget request stay forgotten as later ones arrive?

One panel per setting (a sequence's cell id without its seed; its seeds pooled): for each
request's set, its log10 forget quality after every request from its own on (mean over the
seeds, ±1 sd bars), and the model utility on the right axis. A set's line that falls back
towards the target's level after later requests is a request coming back.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from wagle.report.figures import save_figure
from wagle.report.frontier import log10


def write_sequential_figure(
    path: Path, settings: dict[str, list[list[dict]]], labels: dict[str, str]
) -> Path | None:
    """``settings``: setting → one non-empty list of request records per seed (``settings``
    of the report)."""
    if not settings:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(settings))
    rows = -(-len(settings) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.8 * rows), squeeze=False,
                             sharey=True)  # fmt: skip
    utilities = [r["utility"] for runs in settings.values() for run in runs for r in run]
    span = (min(utilities) - 0.01, max(utilities) + 0.01)  # one utility scale for every panel
    for ax, (setting, runs) in zip(axes.flat, settings.items(), strict=False):  # spare axes
        n = min(map(len, runs))  # requests every seed finished
        steps = list(range(1, n + 1))
        for k, split in enumerate(list(labels)[:n]):
            values = [[log10(run[j]["sets"][split]["forget_quality"]) for run in runs]
                      for j in range(k, n)]  # fmt: skip
            ax.errorbar(steps[k:], [statistics.mean(v) for v in values],
                        yerr=[_sd(v) for v in values], marker="o", capsize=3,
                        label=labels[split])  # fmt: skip
        utility = ax.twinx()
        utility.plot(steps, [statistics.mean(run[j]["utility"] for run in runs) for j in range(n)],
                     "k--", lw=1)  # fmt: skip
        utility.set_ylim(*span)
        utility.set_ylabel("model utility (dashed)", fontsize=8)
        ax.set_xticks(steps, [f"after {j}" for j in steps])
        ax.set_ylabel("log10 forget quality", fontsize=8)
        ax.set_title(f"{setting} ({len(runs)} seed{'s' if len(runs) > 1 else ''})", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
    for ax in list(axes.flat)[len(settings) :]:
        ax.set_visible(False)
    fig.suptitle("Each request's set after each request: does it stay forgotten?")
    return save_figure(fig, path)


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0
