"""``wagle demo``: the whole story on the offline playground, from a fresh machine."""

from __future__ import annotations

import argparse

from wagle.cli import COMMANDS

DEFAULT_RECIPE = "playground"  # shipped with the package: the demo runs from any directory


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help=COMMANDS["demo"],
        description="Builds (or reuses) the default playground and shows what its target and "
        "retain models know about a few forget-split authors; then runs the default "
        f"experiment (the shipped recipe {DEFAULT_RECIPE!r}: NPO, dense and under the WAGLE "
        "and random masks at ratio 0.8) with `wagle run` and prints its table. The "
        "last line printed is the path of the report. A re-run reuses the playground and the "
        "finished cells.",
    )
    parser.add_argument("--examples", type=int, default=2, help="forget questions to show")
    parser.add_argument(
        "--recipe", default=DEFAULT_RECIPE, help="experiment recipe: a YAML file or a shipped name"
    )
    parser.add_argument("--out", default="runs/demo", help="experiment directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wagle.cli.playground import print_info
    from wagle.cli.report import print_report
    from wagle.experiment import load_recipe, run_experiment
    from wagle.experiment.runner import refuse_several_processes
    from wagle.playground import PlaygroundConfig, build_playground
    from wagle.report import write_report

    refuse_several_processes()
    recipe = load_recipe(args.recipe)  # a bad recipe fails before the build
    info = build_playground(PlaygroundConfig())
    print_info(info)
    if args.examples:
        show_examples(info, args.examples)
    print(f"\nRunning the experiment {args.recipe} into {args.out} ...", flush=True)
    root = run_experiment(recipe, args.out, say=lambda line: print(line, flush=True))
    print()
    print_report(write_report(root))
    return 0


def show_examples(info: dict, n: int) -> None:
    """A few forget questions answered by the target and by the retain model."""
    from wagle.data import load_qa
    from wagle.evaluation.generation import generate_answers
    from wagle.models import load_pretrained

    records = load_qa(info["data"], "forget10")
    records = records[:: max(1, len(records) // n)][:n]  # spread over the split's authors
    questions = [r["question"] for r in records]
    answers = {}
    for name in ("target", "retain"):
        model, tokenizer = load_pretrained(info[name])
        answers[name] = generate_answers(model, tokenizer, questions, progress=False)
    print("\nQuestions about authors in the forget split:")
    for i, record in enumerate(records):
        print(f"\nQ: {record['question']}")
        print(f"  truth:  {record['answer']}")
        print(f"  target: {answers['target'][i]}")
        print(f"  retain: {answers['retain'][i]}")
