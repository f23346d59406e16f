"""``wagle report DIR``: the table, figures and report.md of an experiment's saved results."""

from __future__ import annotations

import argparse

from wagle.cli import COMMANDS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help=COMMANDS["report"],
        description="Reads the finished cells of an experiment directory (nothing is "
        "recomputed) and writes DIR/results.json (one record per cell), PNG figures and "
        "DIR/report.md; prints the table, then the report's path.",
    )
    parser.add_argument("dir", help="the --out directory of `wagle run`")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wagle.experiment.sequential_report import is_sequential_dir, write_sequential_report
    from wagle.report import write_report

    if is_sequential_dir(args.dir):  # forget requests in order (wagle.experiment.sequential)
        path = write_sequential_report(args.dir)
        print(f"{path.read_text()}\n{path}")
        return 0
    print_report(write_report(args.dir))
    return 0


def print_report(report) -> None:
    """The frontier (best log10 forget quality at equal utility, split-half) and the cells'
    table, then the report's path as the last line."""
    if report.frontier:
        print("Best log10 forget quality at utility ≥ u × the target's (chosen on half A of the "
              "forget authors, reported on half B; mean ± std over seeds):")  # fmt: skip
        print(report.frontier, end="\n\n")
    print(report.table)
    print(f"\n{report.n_cells} cells; figures and report: {report.path}")
    print(report.path)
