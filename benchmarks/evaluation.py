"""Time a full playground evaluation and check what it must show (issue 5).

Runs, one after the other on the same machine:
1. ``wagle evaluate`` of the retain model (the reference), end to end in a subprocess;
2. the target against that reference: the headline wall time (goal ≤ 120 s on a 2-core CPU);
3. the retain model against its own evaluation (forget quality must be 1.0);
4. the parts of one target evaluation side by side in this process: likelihood passes,
   greedy generation, membership inference, as fractions of their sum;
5. batching by length (what the library does) against batching in record order, on the
   forget10 perturbed answers, alternating twice: the time ratio.

Prints the figures and writes them to benchmarks/results/evaluation.json.

    .venv/bin/python benchmarks/evaluation.py                 # the built playground
    .venv/bin/python benchmarks/evaluation.py --playground-dir DIR   # another build (e.g. micro)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_SECONDS = 120.0
RESULTS = Path(__file__).parent / "results" / "evaluation.json"


def wagle_evaluate(model: str, data: str, out: Path, reference: Path | None = None) -> dict:
    """End-to-end ``wagle evaluate`` in a fresh process; returns eval.json plus its wall time."""
    command = [sys.executable, "-m", "wagle", "evaluate", "--model", model, "--data", data]
    command += ["--out", str(out)] + (["--reference", str(reference)] if reference else [])
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return json.loads((out / "eval.json").read_text()) | {"wall_seconds": wall}


def parts(model_dir: str, data: str) -> dict[str, float]:
    """Seconds of each part of a target evaluation on forget10 + retain + real world + holdout."""
    from wagle.data.load import load_qa
    from wagle.evaluation.benchmarks import RETAIN_EVAL_SIZE, evenly_spaced
    from wagle.evaluation.generation import generate_answers
    from wagle.evaluation.likelihood import answer_nll, perturbed_nll
    from wagle.evaluation.mia import membership_inference
    from wagle.models import load_pretrained

    model, tokenizer = load_pretrained(model_dir)
    splits = {s: load_qa(data, s) for s in ("forget10", "real_authors", "world_facts")}
    splits["retain"] = evenly_spaced(load_qa(data, "retain90"), RETAIN_EVAL_SIZE)
    records = [r for rs in splits.values() for r in rs]
    timings = {}
    start = time.perf_counter()
    for key in ("answer", "paraphrased_answer"):
        answer_nll(model, tokenizer, records, key, batch_size=64)
    perturbed_nll(model, tokenizer, records, batch_size=64)
    timings["likelihood"] = time.perf_counter() - start
    start = time.perf_counter()
    generate_answers(model, tokenizer, [r["question"] for r in records], progress=False)
    timings["generation"] = time.perf_counter() - start
    start = time.perf_counter()
    membership_inference(model, tokenizer, splits["forget10"], load_qa(data, "holdout"))
    timings["mia"] = time.perf_counter() - start
    return timings


def length_sorting(model_dir: str, data: str) -> dict[str, float]:
    """Seconds of mean NLL over forget10's perturbed answers: length-sorted vs record order."""
    import torch

    from wagle.data.batching import encode_records, iter_batches
    from wagle.data.load import load_qa
    from wagle.evaluation.likelihood import mean_nll
    from wagle.models import load_pretrained
    from wagle.sequence import sequence_nll

    model, tokenizer = load_pretrained(model_dir)
    records = load_qa(data, "forget10")
    examples = encode_records(
        tokenizer, [r | {"answer": w} for r in records for w in r["perturbed_answer"]]
    )
    timings = {"sorted": 0.0, "record_order": 0.0}
    for _ in range(2):
        start = time.perf_counter()
        mean_nll(model, examples, tokenizer.pad_token_id, 64)
        timings["sorted"] += time.perf_counter() - start
        start = time.perf_counter()
        with torch.no_grad():
            for batch in iter_batches(examples, 64, tokenizer.pad_token_id):
                sequence_nll(model, batch)
        timings["record_order"] += time.perf_counter() - start
    return timings | {"sorted_over_record_order": timings["sorted"] / timings["record_order"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--playground-dir", help="a playground build (default: the built one)")
    args = parser.parse_args()
    if args.playground_dir:
        root = Path(args.playground_dir)
        data, target, retain = (
            str(root / "data"),
            str(root / "target"),
            str(root / "retain-forget10"),
        )
    else:
        from wagle.playground import PlaygroundConfig, load_info

        info = load_info(PlaygroundConfig())
        data, target, retain = info["data"], info["target"], info["retain"]

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        ref = wagle_evaluate(retain, data, scratch / "retain")
        tgt = wagle_evaluate(target, data, scratch / "target", scratch / "retain")
        own = wagle_evaluate(retain, data, scratch / "retain_self", scratch / "retain")
    seconds = parts(target, data)
    sorting = length_sorting(target, data)
    total = sum(seconds.values())

    def headline(e: dict) -> dict:
        s = e["summary"]
        keys = ("forget.rouge_l_recall", "forget.probability", "mia.min_k_auc", "mia.loss_auc")
        return {k: s["figures"][k] for k in keys} | {
            "forget_quality": e["forget_quality"],
            "model_utility": e["model_utility"],
            "privleak": s["privleak"],
            "forget_efficacy": s["forget_efficacy"],
        }

    figures = {
        "machine": f"{os.cpu_count()} CPUs, shared with other jobs (timings are noisy)",
        "data": data.replace(str(Path.home()), "~", 1),  # no machine paths in git
        "n_forget": tgt["sections"]["forget"]["n"],
        "wall_seconds": {
            "retain_eval": ref["wall_seconds"],
            "target_eval_with_reference": tgt["wall_seconds"],
            "retain_against_itself": own["wall_seconds"],
        },
        "target_eval_over_goal": tgt["wall_seconds"] / GOAL_SECONDS,
        "target_eval_inside_evaluate_seconds": tgt["seconds"],
        "parts_share": {k: v / total for k, v in seconds.items()},
        "parts_seconds": seconds,
        "likelihood_batching_seconds": sorting,
        "target": headline(tgt),
        "retain_against_itself": headline(own),
    }
    print(json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
