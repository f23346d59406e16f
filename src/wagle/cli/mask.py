"""``wagle mask info|compare``: what a mask selects, and how much two masks agree."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wagle.attribution.masks import Mask
from wagle.cli import COMMANDS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mask",
        help=COMMANDS["mask"],
        description="A mask file (safetensors) holds one bool tensor per parameter: the weights "
        "that unlearning may change.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    info = actions.add_parser("info", help="metadata and density per layer and module type")
    info.add_argument("file", help="mask file (.safetensors)")
    info.set_defaults(func=_info)

    compare = actions.add_parser(
        "compare", help="overlap of two masks: Jaccard |A∩B|/|A∪B| and |A∩B|/min(|A|,|B|)"
    )
    compare.add_argument("a", help="first mask file")
    compare.add_argument("b", help="second mask file")
    compare.set_defaults(func=_compare)


def _info(args: argparse.Namespace) -> int:
    from wagle.attribution.masks import mask_metadata, open_mask

    mask = open_mask(args.file)
    for key, value in sorted(mask_metadata(args.file).items()):
        print(f"{key + ':':<20} {json.dumps(value)}")
    print_density(mask)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from wagle.attribution.masks import GROUPINGS, compare_masks, open_mask

    a, b = open_mask(args.a), open_mask(args.b)
    print(f"A = {args.a}\nB = {args.b}")
    for grouping in (None, *GROUPINGS):
        table = compare_masks(a, b, GROUPINGS.get(grouping))
        rows = [
            [g, f"{r['a']:,}", f"{r['b']:,}", f"{r['both']:,}", _f(r["jaccard"]), _f(r["overlap"])]
            for g, r in table.items()
        ]
        print_table([grouping or "", "|A|", "|B|", "|A∩B|", "Jaccard", "overlap"], rows)
    return 0


def print_density(mask: Mask) -> None:
    """Overall density, then per layer and per module type."""
    from wagle.attribution.masks import GROUPINGS, density

    for grouping in (None, *GROUPINGS):
        table = density(mask, GROUPINGS.get(grouping))
        rows = [[g, f"{s:,}", f"{n:,}", _f(s / n if n else 0.0)] for g, (s, n) in table.items()]
        print_table([grouping or "", "selected", "weights", "density"], rows)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A plain aligned table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    for row in [headers, *rows]:
        cells = [str(row[0]).ljust(widths[0])]
        cells += [str(c).rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells).rstrip())
    print()


def _f(value: float) -> str:
    return f"{value:.4f}"
