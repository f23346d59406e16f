"""``wagle playground build|info``: the offline benchmark and models to try wagle on."""

from __future__ import annotations

import argparse
import json

from wagle import config as cfg
from wagle.cli import COMMANDS
from wagle.playground.config import PlaygroundConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "playground",
        help=COMMANDS["playground"],
        description="The playground is a fictitious-authors QA benchmark in the TOFU schema, a "
        "tokenizer, a small Llama trained on all of it (the target to unlearn) and one trained "
        "without the forget split (the retain model). It is built locally and cached under "
        "$WAGLE_HOME (default: ~/.cache/wagle).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    build = actions.add_parser("build", help="build (or reuse) the playground")
    cfg.add_arguments(build, PlaygroundConfig)
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=_build)

    info = actions.add_parser("info", help="where the playground is and what it measured")
    cfg.add_arguments(info, PlaygroundConfig)
    info.add_argument("--json", action="store_true", help="print the info record as JSON")
    info.set_defaults(func=_info)


def _build(args: argparse.Namespace) -> int:
    from wagle.playground.build import build_playground

    config = cfg.build(PlaygroundConfig, args)
    info = build_playground(config, force=args.force, progress=not args.quiet)
    print_info(info)
    return 0


def _info(args: argparse.Namespace) -> int:
    from wagle.playground.build import load_info

    info = load_info(cfg.build(PlaygroundConfig, args))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print_info(info)
    return 0


def print_info(info: dict) -> None:
    """A short human summary: paths, build time, what each model knows."""
    print(f"data:      {info['data']}")
    print(f"target:    {info['target']}")
    for split, path in info["retain_models"].items():
        print(f"retain:    {path}  (trained without {split})")
    total = info["build_seconds"].get("total")
    if total is not None:
        print(f"build time: {total:.0f} s")
    print("greedy ROUGE-L recall (1.0 = answers reproduced word for word):")
    for model, figures in info["rouge_l_recall"].items():
        cells = "  ".join(f"{split} {value:.3f}" for split, value in figures.items())
        print(f"  {model:<16} {cells}")
