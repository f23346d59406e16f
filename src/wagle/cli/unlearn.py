"""``wagle unlearn``: make a model forget a forget set, changing only the masked weights."""

from __future__ import annotations

import argparse
import dataclasses

from wagle import config as cfg
from wagle.cli import COMMANDS
from wagle.unlearning.config import (
    UnlearnConfig,
    all_method_option_fields,
    check_inputs,
    method_options,
    split_recipe,
)
from wagle.unlearning.options import METHOD_OPTIONS

EPILOG = """\
examples:
  wagle unlearn --model target/ --forget forget10.jsonl --retain retain90.jsonl \\
      --method npo --mask mask.safetensors --out unlearned/
  wagle unlearn --config configs/playground_npo.yaml --model target/ --out unlearned/
  wagle unlearn ... --eval-reference retain_eval/eval.json --eval-every 13 --early-stop 4 --keep-last
  wagle unlearn ... --save-every 10   (killed? run the same command again with --resume)
  torchrun --nproc_per_node 2 -m wagle unlearn ...   (or: accelerate launch -m wagle unlearn ...)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "unlearn",
        help=COMMANDS["unlearn"],
        description="Unlearn the forget set while keeping the retain set, with the transformers "
        "Trainer. With --mask, every weight outside the mask stays bit-for-bit unchanged. The "
        "output directory holds the model and tokenizer, run_config.json and training_log.json. "
        "With --eval-reference (a retain model's eval.json) the run is evaluated while it unlearns "
        "(trajectory.json, one line per point) and the best checkpoint is saved: the highest "
        "forget quality among points with utility ≥ --utility-floor × the original's that are "
        "not degenerate.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML recipe of options; flags override it")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an output directory holding a run"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its latest checkpoint (see --save-every)",
    )
    cfg.add_arguments(parser, UnlearnConfig)
    cfg.add_arguments(parser, _method_options_class())
    parser.set_defaults(func=_run)


def _method_options_class() -> type:
    """A dataclass of every method's options, for flags (each method reads its own)."""
    fields = []
    for name, f in all_method_option_fields().items():
        defaults = ", ".join(
            f"{method}: {_default(option)}"
            for method, options in sorted(METHOD_OPTIONS.items())
            for option in dataclasses.fields(options)
            if option.name == name
        )
        help_text = f"{f.metadata.get('help', '')}; defaults {defaults}"
        fields.append((name, f.type, dataclasses.field(default=None, metadata={"help": help_text})))
    return dataclasses.make_dataclass("MethodOptions", fields)


def _default(option: dataclasses.Field):
    return option.default if option.default is not dataclasses.MISSING else option.default_factory()


def _run(args: argparse.Namespace) -> int:
    run_options, recipe_method_options = split_recipe(cfg.load_yaml(args.config))
    config = cfg.build(UnlearnConfig, run_options, args)
    options = method_options(config.method, recipe_method_options, args)
    check_inputs(config, args.overwrite, args.resume)  # before the model is loaded
    from wagle.unlearning.run import unlearn  # torch: only once the inputs are checked

    result = unlearn(config, options, resume=args.resume)
    if result.trajectory:
        print(selection_line(result.selected, result.criterion, result.trajectory[-1]))
    print(f"unlearned model written to {result.out}")
    if config.push_to_hub:
        from wagle.publish import push_to_hub

        print(f"uploaded to {push_to_hub(result.out, config.push_to_hub, config.mask)}")
    return 0


def selection_line(selected: dict, criterion: dict, last: dict) -> str:
    """Which step was kept and why, against the last step."""
    if not criterion["met_floor"]:
        return f"no evaluation point met the utility floor: kept the last step {last['step']}"
    return (
        f"kept step {selected['step']} ({criterion['rule']}, utility ≥ "
        f"{criterion['utility_floor']} × original): forget quality {_fmt(selected['forget_quality'])}"
        f", utility {_fmt(selected['model_utility'])}; last step {last['step']}: forget quality "
        f"{_fmt(last['forget_quality'])}, utility {_fmt(last['model_utility'])}"
    )


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"
