"""Attribution cost relative to one plain forward+backward pass over the same data.

Measured side by side in one run (the two are interleaved, order alternating, median of
``--repeats``):
- plain: every forget and retain batch through ``model(..., labels=...).loss.backward()``,
  gradients left to accumulate in ``.grad`` as in training (no optimizer step);
- attribution: ``attribute`` (the same batches, with fp32 accumulation hooks) + scores for one
  γ + the exact global mask for one ρ.
Goal: attribution / plain ≤ 1.15. Peak memory above the loaded model, for each: on CUDA, peak
allocated bytes; on CPU, the peak RSS increase of a fresh child process that runs it once
after loading (Linux: the child resets its peak RSS first). "extra" = attribution − plain.

Usage (defaults to the playground target and its forget10 / retain90 splits):
    python benchmarks/attribution.py [--model DIR --forget FILE --retain FILE]
Writes benchmarks/results/attribution.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from wagle.attribution import AttributionConfig, attribute
from wagle.attribution.pipeline import encode_forget, encode_retain
from wagle.cli.attribute import load_records
from wagle.data.batching import iter_batches
from wagle.io import write_json
from wagle.models import load_pretrained

RESULTS = Path(__file__).parent / "results" / "attribution.json"


def main() -> None:
    args = parse_args()
    model, tokenizer = load_pretrained(args.model)
    forget, retain = load_records(args.forget), load_records(args.retain)
    config = AttributionConfig(method=args.method, ratio=[args.ratio], batch_size=args.batch_size)
    if args.child:
        before = reset_peak_rss()
        run_once(args.child, model, tokenizer, forget, retain, config)
        print(json.dumps({"peak_rss_increase_bytes": proc_status_bytes("VmHWM") - before}))
        return

    for kind in ("plain", "attribution"):  # warm-up: allocator, kernels, caches
        run_once(kind, model, tokenizer, forget, retain, config)
    times: dict[str, list[float]] = {"plain": [], "attribution": []}
    for rep in range(args.repeats):
        order = ("plain", "attribution") if rep % 2 == 0 else ("attribution", "plain")
        for kind in order:
            start = time.perf_counter()
            run_once(kind, model, tokenizer, forget, retain, config)
            times[kind].append(time.perf_counter() - start)
    ratios = [a / p for a, p in zip(times["attribution"], times["plain"], strict=True)]

    params = sum(p.numel() for p in model.parameters())
    figures = {
        "model": args.model.replace(str(Path.home()), "~", 1),  # no machine paths in git
        "parameters": params,
        "method": args.method,
        "n_forget": len(encode_forget(tokenizer, forget, config)),
        "n_retain": len(encode_retain(tokenizer, retain, len(forget), config)),
        "batch_size": args.batch_size,
        "device": str(next(model.parameters()).device),
        "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "time_ratio_per_repeat": [round(r, 3) for r in ratios],
        "time_ratio_median": round(statistics.median(ratios), 3),
        "time_ratio_goal": 1.15,
        "peak_memory_bytes": peak_memory(args, model, tokenizer, forget, retain, config),
        "fp32_accumulator_bytes": 4 * params * (2 if args.method == "wagle" else 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "note": "timings from one run, interleaved; other jobs may share the CPU",
    }
    write_json(RESULTS, figures)
    print(json.dumps(figures, indent=2))
    print(f"attribution / plain forward+backward: {figures['time_ratio_median']} (goal ≤ 1.15)")
    peaks = {k: f"{v / 2**20:.1f} MiB" for k, v in figures["peak_memory_bytes"].items()}
    print(f"peak memory above the loaded model: {peaks}")


def run_once(kind, model, tokenizer, forget, retain, config) -> None:
    if kind == "plain":
        plain_pass(model, tokenizer, forget, retain, config)
    else:
        result = attribute(model, tokenizer, forget, retain, config, progress=False)
        result.select(result.scores(), config.ratio[0])


def plain_pass(model, tokenizer, forget, retain, config) -> None:
    """Forward+backward of the same batches with the model's own loss, grads into ``.grad``."""
    examples = encode_forget(tokenizer, forget, config)
    examples += encode_retain(tokenizer, retain, len(examples), config)
    device = next(model.parameters()).device
    for batch in iter_batches(examples, config.batch_size, tokenizer.pad_token_id, device):
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)


def peak_memory(args, model, tokenizer, forget, retain, config) -> dict[str, int]:
    """Peak memory above the loaded model of each kind, and attribution's extra over plain."""
    peaks = {}
    for kind in ("plain", "attribution"):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            resting = torch.cuda.memory_allocated()
            run_once(kind, model, tokenizer, forget, retain, config)
            peaks[kind] = torch.cuda.max_memory_allocated() - resting
        else:
            peaks[kind] = child_peak_rss(args, kind)
    return peaks | {"extra": peaks["attribution"] - peaks["plain"]}


def child_peak_rss(args, kind: str) -> int:
    """Peak RSS increase while a fresh process runs ``kind`` once (after loading everything)."""
    argv = [sys.executable, __file__, "--child", kind, *sys.argv[1:]]
    output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_rss_increase_bytes"]


def reset_peak_rss() -> int:
    """Reset this process's peak RSS to its current RSS (Linux: clear_refs 5); return it."""
    Path("/proc/self/clear_refs").write_text("5")
    return proc_status_bytes("VmRSS")


def proc_status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model directory (default: the playground target)")
    parser.add_argument("--forget", help="forget data (default: playground forget10)")
    parser.add_argument("--retain", help="retain data (default: playground retain90)")
    parser.add_argument("--method", default="wagle")
    parser.add_argument("--ratio", type=float, default=0.95)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["plain", "attribution"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.model and args.forget and args.retain):
        info = json.loads(
            subprocess.run(
                [sys.executable, "-m", "wagle", "playground", "info", "--json"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        args.model = args.model or info["target"]
        args.forget = args.forget or f"{info['data']}/forget10.jsonl"
        args.retain = args.retain or f"{info['data']}/retain90.jsonl"
    return args


if __name__ == "__main__":
    main()
