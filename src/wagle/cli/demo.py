"""``wagle demo``: the whole story on the offline playground, from a fresh machine."""

from __future__ import annotations

import argparse

from wagle.cli import COMMANDS
from wagle.cli.playground import print_info


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help=COMMANDS["demo"],
        description="Builds (or reuses) the default playground, then asks the target model and "
        "the retain model a few questions about authors in the forget split: the target knows "
        "them, the retain model, never trained on them, does not.",
    )
    parser.add_argument("--examples", type=int, default=3, help="forget questions to show")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wagle.data import load_qa
    from wagle.evaluation.generation import generate_answers
    from wagle.models import load_pretrained
    from wagle.playground import PlaygroundConfig, build_playground

    info = build_playground(PlaygroundConfig())
    print_info(info)
    records = load_qa(info["data"], "forget10")[:: max(1, 200 // max(1, args.examples))]
    records = records[: args.examples]
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
    return 0
