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
        description="The playground is built the way TOFU is: a small Llama (the base) is "
        "pretrained on a synthetic world of authors and countries; the target to unlearn is the "
        "base fine-tuned on fictitious authors (QA in the TOFU schema), and each retain model "
        "is the base fine-tuned with the same recipe without a forget split. The build also "
        "measures whether the result is a fair test of unlearning (the fidelity checks). "
        "Everything is built locally and cached under $WAGLE_HOME (default: ~/.cache/wagle); "
        "the base is shared by every --seed.",
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
    """A short human summary: paths, build time, each model's figures, the fidelity checks."""
    print(f"base:      {info['base']}")
    print(f"data:      {info['data']}")
    print(f"target:    {info['target']}")
    for split, path in info["retain_models"].items():
        print(f"retain:    {path}  (fine-tuned without {split})")
    seconds = info["build_seconds"]
    if "total" in seconds:
        stages = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k != "total")
        print(f"build time: {seconds['total']:.0f} s ({stages or 'all cached'})")
    print(f"reference: {info['reference']}  (the retain model's evaluation: --reference)")
    print(
        f"  {'model':<26} {'split':<9} {'forget ROUGE':>12} {'forget prob':>11} "
        f"{'retain ROUGE':>12} {'utility':>7} {'forget quality':>14}"
    )
    for model, m in info["models"].items():
        quality = "-" if m["forget_quality"] is None else f"{m['forget_quality']:.3g}"
        print(
            f"  {model:<26} {m['split']:<9} {m['forget_rouge']:>12.3f} "
            f"{m['forget_probability']:>11.3f} {m['retain_rouge']:>12.3f} "
            f"{m['model_utility']:>7.3f} {quality:>14}"
        )
    if fidelity := info.get("fidelity"):
        failed = sum(not c["passed"] for c in fidelity["checks"].values())
        print(f"fidelity: {'every check passed' if not failed else f'{failed} check(s) failed'}")
        for name, check in fidelity["checks"].items():
            print(f"  {'ok  ' if check['passed'] else 'FAIL'} {name}: {check['summary']}")
