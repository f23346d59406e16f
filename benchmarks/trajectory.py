"""Unlearning trajectories on the playground: the selected checkpoint against the last step, and
the cost of evaluating while unlearning.

For each method (``configs/playground_<method>.yaml``) and mask (dense; WAGLE at ρ 0.95), runs
``unlearn_model`` on the playground target with the retain model's evaluation as the reference,
at the default evaluation schedule of ``UnlearnConfig`` unless overridden. Records the selected
and the last point, every point, and the evaluation overhead: seconds spent evaluating ÷ seconds
spent unlearning (the run's wall time minus the evaluations), measured in the same run, and the
same ratio in CPU time of the process (``eval_overhead_cpu``; on a shared machine wall time
mostly measures the wait for a core), and without the step-0 point
(``eval_overhead_cpu_after_step0``: what a cell of ``wagle run`` pays, whose step-0 point is
measured once per experiment and shared by its cells). Writes
benchmarks/results/trajectory.json.

``--before REV`` times the code of git revision ``REV`` (its ``src/``, extracted with ``git
archive``) against this checkout's, each run in a fresh process, alternating ``--repeats``
times per method, and records both side by side.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/trajectory.py [--methods npo graddiff]
        [--masks dense wagle] [--work /tmp/wagle-trajectory] [--eval-every N]
        [--before REV --repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from transformers.utils import logging as hf_logging

from machine import machine_note  # benchmarks/machine.py (this script's folder)
from revisions import extract_src  # benchmarks/revisions.py (this script's folder)
from wagle import config as cfg
from wagle.attribution import AttributionConfig, attribute
from wagle.attribution.masks import load_mask, save_mask
from wagle.data.load import load_qa, read_records
from wagle.evaluation import EvalConfig, evaluate, write_eval
from wagle.evaluation.summary import load_reference
from wagle.models import load_pretrained
from wagle.playground import PlaygroundConfig, load_info
from wagle.unlearning import UnlearnConfig, method_options, unlearn_model
from wagle.unlearning.config import split_recipe
from wagle.unlearning.trajectory import TrajectoryEvaluator

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "trajectory.json"
SHOWN = ("step", "forget_quality", "model_utility", "forget_prob", "forget_rouge", "degenerate")


def reference(info: dict, work: Path) -> dict:
    """The retain model's evaluation on forget10 (computed once, then reused)."""
    path = work / "reference" / "eval.json"
    if not path.is_file():
        model, tokenizer = load_pretrained(info["retain"])
        record = evaluate(model, tokenizer, EvalConfig(benchmark="playground", split="forget10"))
        write_eval(record | {"model": info["retain"]}, path.parent)
    return load_reference(path, "playground", "forget10")


def wagle_mask(info: dict, work: Path, ratio: float) -> Path:
    """``wagle attribute`` (published γ) at ``ratio`` on forget10 / retain90 of the target."""
    path = work / f"wagle-{ratio:g}.safetensors"
    if not path.is_file():
        model, tokenizer = load_pretrained(info["target"], device=None)
        forget = load_qa(info["data"], "forget10")
        retain = load_qa(info["data"], "retain90")
        config = AttributionConfig(ratio=[ratio])
        result = attribute(model, tokenizer, forget, retain, config, progress=False)
        scores = result.scores()
        save_mask(result.select(scores, ratio), path, result.metadata(ratio, None, scores))
    return path


@contextmanager
def evaluation_cpu_seconds():
    """Yields a list that receives the process CPU seconds of each trajectory point measured."""
    spent, call = [], TrajectoryEvaluator.__call__

    def timed(self, model):
        start = time.process_time()
        try:
            return call(self, model)
        finally:
            spent.append(time.process_time() - start)

    TrajectoryEvaluator.__call__ = timed
    try:
        yield spent
    finally:
        TrajectoryEvaluator.__call__ = call


def run(info, method: str, mask_path: Path | None, ref: dict, overrides: dict) -> dict:
    recipe = ROOT / "configs" / f"playground_{method}.yaml"
    run_options, options = split_recipe(cfg.load_yaml(recipe))
    config = cfg.build(UnlearnConfig, run_options, {"progress": False} | overrides)
    model, tokenizer = load_pretrained(info["target"], device=None)
    mask = load_mask(mask_path, model) if mask_path else None
    forget = read_records(info["data"], config.forget_split)
    retain = read_records(info["data"], config.retain_split)
    start, cpu_start = time.perf_counter(), time.process_time()
    with evaluation_cpu_seconds() as cpu_points:
        result = unlearn_model(
            model, tokenizer, forget, retain, config, method_options(method, options), mask, ref
        )
    total, cpu_total = time.perf_counter() - start, time.process_time() - cpu_start
    evaluating = sum(p["eval_seconds"] for p in result.trajectory)
    cpu_evaluating = sum(cpu_points)
    unlearning = cpu_total - cpu_evaluating
    return {
        "recipe": str(recipe.relative_to(ROOT)),
        "playground": Path(info["target"]).parent.name,
        "schedule": {"eval_every": config.eval_every, "eval_epochs": config.eval_epochs},
        "steps": result.trajectory[-1]["step"],
        "points": len(result.trajectory),
        "seconds_total": round(total, 1),
        "seconds_evaluating": round(evaluating, 1),
        "eval_overhead": round(evaluating / (total - evaluating), 3),
        "cpu_seconds_total": round(cpu_total, 1),
        "cpu_seconds_evaluating": round(cpu_evaluating, 1),
        "cpu_seconds_points": [round(x, 2) for x in cpu_points],
        "eval_overhead_cpu": round(cpu_evaluating / unlearning, 3),
        "eval_overhead_cpu_after_step0": round((cpu_evaluating - cpu_points[0]) / unlearning, 3),
        "criterion": result.criterion,
        "selected": {k: result.selected[k] for k in SHOWN},
        "last": {k: result.trajectory[-1][k] for k in SHOWN},
        "trajectory": result.trajectory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["npo", "graddiff"])
    parser.add_argument("--masks", nargs="+", default=["dense", "wagle"])
    parser.add_argument("--mask-only", action="store_true", help="make the mask and stop")
    parser.add_argument("--ratio", type=float, default=0.95)
    parser.add_argument("--work", default="/tmp/wagle-trajectory", help="reference and masks")
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--eval-epochs", type=int, default=None)
    parser.add_argument("--before", help="git revision to time against this checkout")
    parser.add_argument("--repeats", type=int, default=1, help="with --before: runs of each")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # METHOD: one dense run, JSON out
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    info, work = load_info(PlaygroundConfig()), Path(args.work)
    ref = reference(info, work)
    overrides = {
        k: v for k, v in (("eval_every", args.eval_every), ("eval_epochs", args.eval_epochs)) if v
    }
    if args.mask_only:
        print(wagle_mask(info, work, args.ratio))
        return
    if args.child:
        print(json.dumps(run(info, args.child, None, ref, overrides)))
        return
    if args.before:
        compare(args, info, overrides)
        return
    for mask_name in args.masks:
        mask_path = None if mask_name == "dense" else wagle_mask(info, work, args.ratio)
        for method in args.methods:
            key = f"{method}/{mask_name if mask_path is None else f'wagle-{args.ratio:g}'}"
            key += "".join(f" {k}={v}" for k, v in overrides.items())  # a non-default schedule
            key += f" playground={Path(info['target']).parent.name}"  # which build it ran on
            figures = run(info, method, mask_path, ref, overrides)
            print(key, json.dumps({k: v for k, v in figures.items() if k != "trajectory"}))
            record(key, figures)


def compare(args, info: dict, overrides: dict) -> None:
    """Each method dense, with ``args.before``'s code and this checkout's, in fresh processes,
    alternating; both runs' figures and the overheads side by side."""
    flags = ["--work", args.work]
    flags += [f for k, v in overrides.items() for f in (f"--{k.replace('_', '-')}", str(v))]
    with tempfile.TemporaryDirectory() as scratch:
        after = shutil.copytree(ROOT / "src", Path(scratch) / "after" / "src")  # as it is now
        sources = {"before": extract_src(args.before, Path(scratch) / "before"), "after": after}
        for turn, method in enumerate(args.methods):
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for repeat in range(args.repeats):  # who goes first alternates
                order = ["before", "after"] if (turn + repeat) % 2 == 0 else ["after", "before"]
                for name in order:
                    command = [sys.executable, __file__, "--child", method, *flags]
                    env = os.environ | {"PYTHONPATH": str(sources[name])}
                    output = subprocess.run(command, env=env, check=True, capture_output=True)
                    runs[name].append(json.loads(output.stdout.decode().splitlines()[-1]))
                    shown = ("eval_overhead_cpu", "eval_overhead_cpu_after_step0")
                    print(method, name, {k: runs[name][-1][k] for k in shown}, flush=True)
            key = f"{method}/dense before {args.before} vs after"
            key += "".join(f" {k}={v}" for k, v in overrides.items())
            key += f" playground={Path(info['target']).parent.name}"
            record(key, side_by_side(runs, args.before))


def side_by_side(runs: dict[str, list[dict]], before: str) -> dict:
    """Medians of the overheads of each version, their ratio, and every run."""
    figures: dict = {
        "machine": machine_note(),
        "clock": "process CPU time is the figure (on a shared machine wall time mostly measures "
        "the wait for a core)",
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "before_revision": before,
    }
    for key in ("eval_overhead_cpu", "eval_overhead_cpu_after_step0", "cpu_seconds_evaluating"):
        figures[key] = {n: statistics.median(r[key] for r in rs) for n, rs in runs.items()}
    point = {
        n: statistics.median(p for r in rs for p in r["cpu_seconds_points"])
        for n, rs in runs.items()
    }
    figures["cpu_seconds_per_point_median"] = point
    figures["point_speedup_cpu"] = point["before"] / point["after"]
    same = all(
        [p[k] for p in rb["trajectory"] for k in SELECTION_KEYS]
        == [p[k] for p in ra["trajectory"] for k in SELECTION_KEYS]
        for rb, ra in zip(runs["before"], runs["after"], strict=True)
    )
    figures["same_selection"] = same and all(
        rb["selected"]["step"] == ra["selected"]["step"]
        for rb, ra in zip(runs["before"], runs["after"], strict=True)
    )
    figures["largest_relative_difference"] = max(
        relative(pb[k], pa[k])
        for rb, ra in zip(runs["before"], runs["after"], strict=True)
        for pb, pa in zip(rb["trajectory"], ra["trajectory"], strict=True)
        for k in pb
        if k not in ("eval_seconds", "step", "epoch", "degenerate")
    )
    return figures | {"runs": runs}


SELECTION_KEYS = ("step", "degenerate")


def relative(a: float | None, b: float | None) -> float:
    """|a - b| / max(|a|, |b|) (0 for two equal values, None included)."""
    if a == b:
        return 0.0
    if a is None or b is None:
        return float("inf")
    return abs(a - b) / max(abs(a), abs(b))


def record(key: str, figures: dict) -> None:
    """Add one run to the results file (re-read first: runs may go on in parallel)."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps(results | {key: figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
