"""``wagle run RECIPE.yaml --out DIR``: an experiment grid, resumable, then its report."""

from __future__ import annotations

import argparse

from wagle.cli import COMMANDS
from wagle.experiment.recipe import shipped_recipes

EPILOG = """\
examples:
  wagle run playground --out runs/demo          (a shipped recipe, by name)
  wagle run playground --out runs/auto --ratio auto --seeds 0 1 2
  wagle run playground --out runs/frontier --masks dense wagle random magnitude wanda lora \\
      --ratio 0.5 0.8 0.95 --learning-rates 5e-4 1e-3 2e-3 --seeds 0 1 2   (frontier study)
  wagle run my_recipe.yaml --out runs/mine      (a recipe file)
  wagle report runs/demo            (the report again, from the saved results alone)
  wagle run sequential_playground --out runs/seq
      (a `sequential:` section: forget requests in order, each with its own attribution,
       mask and patch, evaluated on every earlier request's set; see docs/patches.md)

Shipped recipes (installed with wagle, in wagle/recipes/): {shipped}.
An interrupted run resumes: finished cells (DIR/cells/*/result.json) are skipped.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help=COMMANDS["run"],
        description="Runs every cell of the recipe's grid (unlearning method × mask method × "
        "ratio × seed) on one loaded model: attribution statistics once per seed, each cell "
        "unlearned in memory, its selected checkpoint evaluated. Each cell writes "
        "DIR/cells/<cell>/; finished cells are skipped on a re-run. Ends with `wagle report`.",
        epilog=EPILOG.format(shipped=", ".join(shipped_recipes())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "recipe", help="experiment recipe: a YAML file or a shipped recipe's name (playground)"
    )
    parser.add_argument("--out", required=True, help="experiment directory")
    parser.add_argument("--model", help="model to unlearn (overrides the recipe)")
    parser.add_argument("--retain-model", help="retain model to evaluate as the reference")
    parser.add_argument("--reference", help="saved eval.json of the retain model")
    parser.add_argument("--data", help="QA data directory or hub id (overrides the recipe)")
    parser.add_argument("--masks", nargs="+", help="mask methods (overrides the recipe)")
    parser.add_argument("--ratio", nargs="+", dest="ratios", help="ratios, or auto")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds (overrides the recipe)")
    parser.add_argument(
        "--learning-rates", nargs="+", type=float, help="aggressiveness axis: learning rates"
    )
    parser.add_argument("--epochs", nargs="+", type=float, help="aggressiveness axis: epochs")
    parser.add_argument(
        "--utility-floor", type=float, help="auto ratio: fraction of target utility"
    )
    parser.add_argument("--save-model", action="store_true", default=None, help="keep models")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wagle.cli.report import print_report
    from wagle.experiment import load_recipe, run_experiment
    from wagle.experiment.sequential import run_sequential
    from wagle.report import write_report

    overrides = {
        key: getattr(args, key)
        for key in ("model", "retain_model", "reference", "data", "masks", "ratios", "seeds",
                    "learning_rates", "epochs", "utility_floor", "save_model")
    }  # fmt: skip
    recipe = load_recipe(args.recipe, **overrides)
    if recipe.sequential:  # forget requests in order (wagle.experiment.sequential)
        report = run_sequential(recipe, args.out, say=_say)
        print(f"\n{report.read_text()}{report}")
        return 0
    root = run_experiment(recipe, args.out, say=lambda line: print(line, flush=True))
    print()
    print_report(write_report(root))
    return 0


def _say(line: str) -> None:
    print(line, flush=True)
