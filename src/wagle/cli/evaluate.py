"""``wagle evaluate``: every metric of a benchmark on one model, written to ``DIR/eval.json``."""

from __future__ import annotations

import argparse
from pathlib import Path

from wagle import config as cfg
from wagle import validate
from wagle.cli import COMMANDS, add_loading_flags
from wagle.evaluation.config import EvalConfig

EPILOG = """\
benchmarks (--benchmark) and what eval.json holds for each:
  playground, tofu  sections forget, retain, real_authors, world_facts: probability,
                    rouge_l_recall, truth_ratio (per sample: NLLs, generations); summary:
                    forget_quality (KS test against --reference), model_utility, forget_efficacy,
                    utility, privleak, degeneration (repetition, rouge_gap, degenerate);
                    mia: <attack>_auc, forget vs holdout, for each of --mia-attacks;
                    memorisation: exact_memorisation, extraction_strength (forget answers)
  muse              perplexity_forget / _retain (nll, perplexity), verbmem (rouge_l_f1),
                    knowmem_forget / _retain (rouge_l_f1), mia, memorisation
  mcq               accuracy (WMDP / MMLU-format file: question, choices, answer)
  text              nll, perplexity (raw-text file)
  lm-eval           lm-eval-harness tasks (--tasks mmlu,wmdp_bio; --task-dir for local task
                    YAMLs): one section per task, acc / acc_norm and their stderr
membership attacks (--mia-attacks): loss, zlib, reference (--mia-reference-model), gradnorm
  (--gradnorm-p), min_k, min_k_plus_plus (--mink-k); definitions in docs/metrics.md

examples:
  wagle evaluate --model retain/ --benchmark playground --out evals/retain
  wagle evaluate --model unlearned/ --benchmark tofu --split forget10 --reference evals/retain \\
      --mia-attacks loss zlib min_k min_k_plus_plus gradnorm --out evals/unlearned
  wagle evaluate --model unlearned/ --benchmark lm-eval --tasks mmlu,wmdp_bio --out evals/mmlu
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help=COMMANDS["evaluate"],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate a model on a benchmark and write DIR/eval.json with every "
        "per-sample value, forget_quality (needs --reference: the eval.json of a retain model "
        "on the same benchmark and split), model_utility and a summary. The eval.json of a "
        "retain model is directly usable as --reference.",
    )
    parser.add_argument("--model", required=True, help="model directory (with its tokenizer)")
    parser.add_argument("--out", required=True, help="output directory for eval.json")
    parser.add_argument("--config", help="YAML file of EvalConfig options")
    parser.add_argument(
        "--fsdp",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="under torchrun / accelerate launch: shard the model over the processes with FSDP2 "
        "and evaluate with every process (sharded forward passes, the same questions); the "
        "first process writes eval.json (on by itself under an accelerate FSDP2 config)",
    )
    add_loading_flags(parser, "an existing eval.json")
    cfg.add_arguments(parser, EvalConfig)
    parser.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    config = cfg.build(EvalConfig, cfg.load_yaml(args.config), args)
    validate.check_model_dir(args.model)
    if config.mia_reference_model:
        validate.check_model_dir(config.mia_reference_model, "reference model")
    validate.check_output(Path(args.out) / "eval.json", args.overwrite)
    from wagle.evaluation.suite import (  # torch from here on
        check_inputs,
        evaluate,
        refuse_several_processes,
        write_eval,
    )
    from wagle.unlearning.devices import fsdp_requested

    fsdp = fsdp_requested(args.fsdp)  # FSDP1 and DeepSpeed stop here
    if not fsdp:
        refuse_several_processes()
    from wagle.evaluation.table import print_eval
    from wagle.models import load_pretrained
    from wagle.sharding import is_main_process

    config, reference = check_inputs(config)  # data and reference, before the model is loaded
    model, tokenizer = load_pretrained(
        args.model, dtype=config.dtype, trust_remote_code=args.trust_remote_code, fsdp=fsdp
    )
    result = evaluate(model.eval(), tokenizer, config, reference=reference, model_path=args.model)
    if is_main_process():
        path = write_eval(result, args.out)
        print_eval(result)
        print(f"wrote {path}")
    return 0
