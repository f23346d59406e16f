"""The experiment table: one row per (method, mask, ratio), mean ± std over seeds."""

from __future__ import annotations

from wagle.report.results import COLUMNS, STAGES, Row

FORMATS = {"forget_quality": "{:.2e}", "log10_forget_quality": "{:.1f}"}
HEADINGS = [
    "method",
    "mask",
    "ratio",
    "seeds",
    *COLUMNS.values(),
    "degenerate",
    *(f"s {stage}" for stage in STAGES),
]


def table_rows(rows: list[Row]) -> list[list[str]]:
    """The table's cells as text (FQ in scientific notation, log10 FQ 1 decimal, the rest 3)."""
    lines = []
    for row in rows:
        figures = [_mean_std(row.mean[k], row.std[k], FORMATS.get(k, "{:.3f}")) for k in COLUMNS]
        ratio = "-" if row.mask in ("dense", "lora") else f"{row.ratio:g}"
        degenerate = f"{row.degenerate}/{len(row.seeds)}" if row.degenerate else "no"
        seconds = [f"{row.seconds[s]:.0f}" for s in STAGES]
        lines.append(
            [row.method, row.mask, ratio, str(len(row.seeds)), *figures, degenerate, *seconds]
        )
    return lines


def markdown_table(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEADINGS) + " |", "|" + "---|" * len(HEADINGS)]
    out += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    return "\n".join(out)


def text_table(rows: list[Row]) -> str:
    """Aligned plain-text columns for the terminal."""
    body = [HEADINGS, *table_rows(rows)]
    widths = [max(len(line[i]) for line in body) for i in range(len(HEADINGS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in body
    )


def _mean_std(mean: float | None, std: float | None, fmt: str) -> str:
    if mean is None:
        return "-"
    text = fmt.format(mean)
    return text if std is None else f"{text} ± {fmt.format(std)}"
