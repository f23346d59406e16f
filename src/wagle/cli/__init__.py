"""The ``wagle`` command line: thin subcommands over the library.

Each subcommand lives in its own module with ``add_parser(subparsers)`` that registers it and
sets ``func(args) -> int``. A ``WagleError`` (a user's mistake) prints one line and exits 2.

Only the module of the command being run is imported (``wagle --help`` imports none), and
command modules import torch and transformers inside their functions, so help and input
errors come back without loading the ML stack.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from wagle import __version__
from wagle.errors import WagleError

# command → one-line help; the module wagle.cli.<command> defines it in full.
COMMANDS = {
    "playground": "build or inspect the offline playground (fictitious authors + small Llama "
    "models)",
    "plan": "expected peak memory per device for attribute and unlearn",
    "attribute": "score weights for unlearning and write mask file(s)",
    "mask": "inspect or compare mask files",
    "unlearn": "unlearn a forget set with a method (ga, graddiff, npo, simnpo, po, rmu, idkdpo, "
    "undial, wga, satimp, ceu) under a mask",
    "evaluate": "evaluate a model: TOFU metrics, forget quality, MIA, multiple choice, MUSE-style",
    "run": "run an experiment: methods × masks × ratios × seeds, then its report",
    "report": "write report.md, figures and results.json of a `wagle run` directory",
    "demo": "build the playground, then run the default experiment (what `make demo` runs)",
    "patch": "create, apply, revert, inspect or compose the patch of an unlearning run",
}

DESCRIPTION = """\
Weight attribution-guided unlearning (WAGLE) for Hugging Face causal LMs.

The pipeline: score every weight for its influence on forgetting (attribute), let an
unlearning method change only the selected weights (unlearn), measure what was forgotten and
what was kept (evaluate). `wagle playground build` makes a small offline world to try it on.
"""


def add_loading_flags(parser: argparse.ArgumentParser, replaces: str) -> None:
    """``--overwrite`` (replace ``replaces``) and ``--trust-remote-code``."""
    parser.add_argument("--overwrite", action="store_true", help=f"replace {replaces}")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="run the model's own code (off: safer)"
    )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, just that command in full and the others by name."""
    parser = argparse.ArgumentParser(
        prog="wagle", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"wagle {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(f"wagle.cli.{name}").add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), "")
    args = build_parser(only=command if command in COMMANDS else "").parse_args(argv)
    try:
        return args.func(args) or 0
    except WagleError as err:
        one_line = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"wagle: error: {one_line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wagle: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        _close_process_group()


def _close_process_group() -> None:
    """Under torchrun, leave the process group before exit: a process that exits with gloo's
    threads still running can abort ("terminate called without an active exception")."""
    dist = sys.modules.get("torch.distributed")  # never import torch just for this
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
