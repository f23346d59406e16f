"""Forget / retain ROUGE-L recall on the playground before and after unlearning.

For each method, runs ``configs/playground_<method>.yaml`` on the playground target (built by
``wagle playground build``), optionally under a mask, and measures the mean greedy ROUGE-L
recall on forget10 and on a fixed sample of retain90, next to the target's and the retain
model's. Prints the figures and writes benchmarks/results/playground_unlearning.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/playground_unlearning.py \
        --methods graddiff npo [--mask mask.safetensors]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from wagle import config as cfg
from wagle.data.load import load_qa
from wagle.evaluation.generation import generate_answers
from wagle.evaluation.rouge import rouge_l
from wagle.playground import PlaygroundConfig, load_info
from wagle.unlearning import UnlearnConfig, method_options, unlearn
from wagle.unlearning.config import split_recipe

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "playground_unlearning.json"
RETAIN_SAMPLE = 200


def recall(model, tokenizer, records) -> float:
    answers = generate_answers(model, tokenizer, [r["question"] for r in records], progress=False)
    scores = rouge_l(answers, [r["answer"] for r in records])
    return round(sum(scores) / len(scores), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["graddiff", "npo"])
    parser.add_argument("--mask", default=None, help="mask file; none = dense")
    parser.add_argument("--tag", default=None, help="key of this run in the results file")
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    info = load_info(PlaygroundConfig())
    forget = load_qa(Path(info["data"]) / "forget10.jsonl")
    retain_all = load_qa(Path(info["data"]) / "retain90.jsonl")
    retain = retain_all[:: max(1, len(retain_all) // RETAIN_SAMPLE)][:RETAIN_SAMPLE]
    tokenizer = AutoTokenizer.from_pretrained(info["target"])
    figures: dict = {"samples": {"forget10": len(forget), "retain90": len(retain)}}
    for name in ("target", "retain"):
        model = AutoModelForCausalLM.from_pretrained(info[name])
        figures[name] = {"forget": recall(model, tokenizer, forget), "retain": recall(model, tokenizer, retain)}  # fmt: skip
        print(name, figures[name], flush=True)
    for method in args.methods:
        recipe = ROOT / "configs" / f"playground_{method}.yaml"
        run, options = split_recipe(cfg.load_yaml(recipe))
        with tempfile.TemporaryDirectory() as out:
            overrides = {"model": info["target"], "forget": info["data"], "retain": info["data"]}
            overrides |= {"out": out, "mask": args.mask, "progress": False}
            config = cfg.build(UnlearnConfig, run, overrides)
            start = time.perf_counter()
            result = unlearn(config, method_options(method, options))
            seconds = round(time.perf_counter() - start, 1)
            model = result.model.eval()
            figures[method] = {
                "forget": recall(model, tokenizer, forget),
                "retain": recall(model, tokenizer, retain),
                "unlearn_seconds": seconds,
                "steps": len(result.step_log),
                "recipe": str(recipe.relative_to(ROOT)),
            }
        print(method, figures[method], flush=True)
    figures["mask"] = args.mask
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    previous[args.tag or ("masked" if args.mask else "dense")] = figures
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(previous, indent=2) + "\n")


if __name__ == "__main__":
    main()
