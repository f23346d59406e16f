"""A terminal table of an evaluation: one row per aggregate, then the headline figures."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

HEADLINE = ("forget_quality", "model_utility", "privleak", "forget_efficacy", "utility")


def print_eval(result: dict[str, Any], console: Console | None = None) -> None:
    """Print every section's aggregates and the summary of an ``eval.json`` record."""
    console = console or Console()
    table = Table(title=f"{result['benchmark']} / {result['split']}", caption=result["model"])
    for column, justify in (("section", "left"), ("n", "right"), ("metric", "left")):
        table.add_column(column, justify=justify)
    table.add_column("value", justify="right")
    reference = result["summary"].get("reference_figures")
    if reference is not None:
        table.add_column("retain ref.", justify="right")
    for name, section in result["sections"].items():
        for i, (metric, value) in enumerate(section["aggregates"].items()):
            head = [name, str(section["n"])] if i == 0 else ["", ""]
            ref = [] if reference is None else [_fmt(reference.get(f"{name}.{metric}"))]
            table.add_row(*head, metric, _fmt(value), *ref)
        table.add_section()
    for key in HEADLINE:
        head = ["summary" if key == HEADLINE[0] else "", ""]
        ref = [] if reference is None else [""]
        table.add_row(*head, key, _fmt(result["summary"][key]), *ref)
    if degeneration := result["summary"].get("degeneration"):
        for key in ("repetition", "rouge_gap", "degenerate"):
            ref = [] if reference is None else [""]
            table.add_row("", "", key, _fmt(degeneration[key]), *ref)
    console.print(table)
    if result["reference"] is None:
        console.print("no --reference: forget_quality and privleak need a retain model's eval")
    console.print(f"evaluated in {result['seconds']:.1f} s")


def _fmt(value: float | bool | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
