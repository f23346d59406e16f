"""``wagle evaluate``: every metric of a benchmark on one model, written to ``DIR/eval.json``."""

from __future__ import annotations

import argparse

from wagle import config as cfg
from wagle.evaluation.config import EvalConfig
from wagle.evaluation.suite import evaluate, load_model, refuse_several_processes, write_eval
from wagle.evaluation.summary import load_reference
from wagle.evaluation.table import print_eval


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model: TOFU metrics, forget quality, MIA, multiple choice, MUSE-style",
        description="Evaluate a model on a benchmark and write DIR/eval.json with every "
        "per-sample value, forget_quality (needs --reference: the eval.json of a retain model "
        "on the same benchmark and split), model_utility and a summary. The eval.json of a "
        "retain model is directly usable as --reference.",
    )
    parser.add_argument("--model", required=True, help="model directory (with its tokenizer)")
    parser.add_argument("--out", required=True, help="output directory for eval.json")
    parser.add_argument("--config", help="YAML file of EvalConfig options")
    cfg.add_arguments(parser, EvalConfig)
    parser.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    config = cfg.build(EvalConfig, cfg.load_yaml(args.config), args)
    refuse_several_processes()
    reference = (
        load_reference(config.reference, config.benchmark, config.split)
        if config.reference
        else None
    )  # checked before the model is loaded
    model, tokenizer = load_model(args.model, config.dtype)
    result = evaluate(model, tokenizer, config, reference=reference, model_path=args.model)
    path = write_eval(result, args.out)
    print_eval(result)
    print(f"wrote {path}")
    return 0
