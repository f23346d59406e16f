"""The ``wagle`` command line: thin subcommands over the library.

Each subcommand lives in its own module with ``add_parser(subparsers)`` that registers it and
sets ``func(args) -> int``. A ``WagleError`` (a user's mistake) prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from wagle import __version__
from wagle.cli import attribute, demo, evaluate, mask, plan, playground, unlearn
from wagle.errors import WagleError

COMMANDS = [playground, plan, attribute, mask, unlearn, evaluate, demo]

DESCRIPTION = """\
Weight attribution-guided unlearning (WAGLE) for Hugging Face causal LMs.

The pipeline: score every weight for its influence on forgetting (attribute), let an
unlearning method change only the selected weights (unlearn), measure what was forgotten and
what was kept (evaluate). `wagle playground build` makes a small offline world to try it on.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wagle", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"wagle {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except WagleError as err:
        print(f"wagle: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wagle: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
