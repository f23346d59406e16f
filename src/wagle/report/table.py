"""The experiment table: one row per (method, mask, ratio), mean ± std over seeds."""

from __future__ import annotations

from wagle.report.results import COLUMNS, STAGES, Row

FORMATS = {"forget_quality": "{:.2e}", "log10_forget_quality": "{:.1f}"}
AXES = {"learning_rate": "lr", "epochs": "epochs"}  # shown when a recipe sweeps them


def headings(rows: list[Row]) -> list[str]:
    axes = [name for key, name in AXES.items() if _swept(rows, key)]
    stages = [f"s {stage}" for stage in STAGES]
    return ["method", "mask", "ratio", *axes, "seeds", *COLUMNS.values(), "degenerate", *stages]


def table_rows(rows: list[Row]) -> list[list[str]]:
    """The table's cells as text (FQ in scientific notation, log10 FQ 1 decimal, the rest 3)."""
    swept = [key for key in AXES if _swept(rows, key)]
    lines = []
    for row in rows:
        figures = [_mean_std(row.mean[k], row.std[k], FORMATS.get(k, "{:.3f}")) for k in COLUMNS]
        ratio = "-" if row.mask in ("dense", "lora") else f"{row.ratio:g}"
        axes = [_axis(getattr(row, key)) for key in swept]
        degenerate = f"{row.degenerate}/{len(row.seeds)}" if row.degenerate else "no"
        seconds = [f"{row.seconds[s]:.0f}" for s in STAGES]
        lines.append(
            [row.method, row.mask, ratio, *axes, str(len(row.seeds)), *figures, degenerate,
             *seconds]
        )  # fmt: skip
    return lines


def markdown_table(rows: list[Row]) -> str:
    head = headings(rows)
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    return "\n".join(out)


def text_table(rows: list[Row]) -> str:
    """Aligned plain-text columns for the terminal."""
    return align([headings(rows), *table_rows(rows)])


def align(body: list[list[str]]) -> str:
    """Lines of cells as left-aligned columns two spaces apart."""
    widths = [max(len(line[i]) for line in body) for i in range(len(body[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in body
    )


def _swept(rows: list[Row], key: str) -> bool:
    return any(getattr(row, key) is not None for row in rows)


def _axis(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _mean_std(mean: float | None, std: float | None, fmt: str) -> str:
    if mean is None:
        return "-"
    text = fmt.format(mean)
    return text if std is None else f"{text} ± {fmt.format(std)}"
