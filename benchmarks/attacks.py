"""Membership attacks and memorisation on the built playground: the figures each model gets, and
what the new statistics pass costs against the plain token-NLL pass it replaced.

1. Every attack's AUC (forget10 vs holdout) and the memorisation metrics of forget10, for the
   target and the retain model (the reference attack of the target uses the retain model);
2. side by side, alternating ``--repeats`` times on the target: ``token_statistics`` (NLL, μ, σ,
   greedy hit of every labelled token: what the attacks read) against ``token_nlls`` (what the
   two attacks before it read); and the per-sample gradient norm, in ms per sample.

Prints the figures and writes them to benchmarks/results/attacks.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/attacks.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from machine import machine_note  # benchmarks/machine.py (this script's folder)

RESULTS = Path(__file__).parent / "results" / "attacks.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from wagle.data.batching import encode_records
    from wagle.data.load import load_qa
    from wagle.evaluation.likelihood import token_nlls
    from wagle.evaluation.memorisation import memorisation
    from wagle.evaluation.mia import MIA_ATTACKS, gradient_norms, membership_inference
    from wagle.evaluation.token_stats import token_statistics
    from wagle.models import load_pretrained
    from wagle.playground import PlaygroundConfig, load_info

    torch.set_num_threads(1)
    info = load_info(PlaygroundConfig())
    forget, holdout = load_qa(info["data"], "forget10"), load_qa(info["data"], "holdout")
    target, tokenizer = load_pretrained(info["target"], device="cpu")
    retain, _ = load_pretrained(info["retain"], device="cpu")

    figures = {}
    for name, model, reference in (("target", target, retain), ("retain", retain, None)):
        attacks = [a for a in MIA_ATTACKS if reference is not None or a != "reference"]
        result = membership_inference(
            model, tokenizer, forget, holdout, attacks=attacks, reference_model=reference
        )
        figures[name] = {f"{a}_auc": round(result[a]["auc"], 4) for a in attacks}
        section = memorisation(model, tokenizer, forget)
        figures[name] |= {k: round(v, 4) for k, v in section["aggregates"].items()}
        print(name, figures[name])

    examples = encode_records(tokenizer, forget + holdout)
    pad = tokenizer.pad_token_id
    times = {"token_statistics": [], "token_nlls": []}
    for _ in range(args.repeats):
        for label, run in (("token_statistics", token_statistics), ("token_nlls", token_nlls)):
            start = time.perf_counter()
            run(target, examples, pad, 32)
            times[label].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in times.items()}
    start = time.perf_counter()
    gradient_norms(target, examples[:50], [True] * 50, 2)
    gradnorm_ms = (time.perf_counter() - start) / 50 * 1000
    cost = {
        "seconds_median": {k: round(v, 3) for k, v in medians.items()},
        "statistics_over_nlls": round(medians["token_statistics"] / medians["token_nlls"], 3),
        "gradnorm_ms_per_sample": round(gradnorm_ms, 1),
        "samples": len(examples),
    }
    print(cost)
    record = {
        "machine": machine_note(),
        "playground": info["target"].replace(str(Path.home()), "~", 1),
        "forget": "forget10",
        "nonmembers": "holdout",
        "figures": figures,
        "cost": cost,
        "repeats": args.repeats,
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
