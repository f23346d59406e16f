"""Hot-path step times, the code before and after, measured side by side in one run.

A random Llama (playground "small" shape by default) trains on random QA-shaped data with
``MaskedUnlearningTrainer``; each run times every optimizer step (``on_step_begin`` to
``on_step_end``) and the optimizer step alone (``on_pre_optimizer_step`` to
``on_optimizer_step``: AdamW with wagle's masked weight decay, or ``SelectiveAdamW``). Runs,
for each method and each ``--accumulation`` (micro-batches per optimizer step: the recipes'
global batch 32 of per-device batches 4 accumulates 8 on one device): dense (no mask), then
for each ``--ratios`` ρ masked with dense AdamW state (``full``) and with selective state
(``selected``), under a random mask selecting ρ of every weight. Figures (medians):

- masked ÷ dense training step, per method, state, ρ and accumulation (goal ≤ 1.05; the
  masking and the optimizer run once a step, the forward and backward passes once a
  micro-batch: without accumulation a tiny CPU model shows their cost at its largest). Each
  masked run is *sandwiched* between two dense runs in the same child process (dense, masked,
  dense, masked, ..., dense), its ratio taken to the mean of its two neighbours' medians (a
  drift in load within the child cancels to first order); the figure is the median of those
  ratios over the repeats, with their range;
- the parts of a step that differ, timed inside it: the gradient zeroing and the optimizer
  step (masked decay, fills and AdamW), masked minus dense in ms, and the ratio they imply,
  (dense step + that) ÷ dense step: the forward and backward passes are the same work;
- SelectiveAdamW step ÷ dense-state masked AdamW step, the optimizer step alone (goal ≤ 1),
  per ρ, without accumulation.

Times are the process's CPU time (``time.process_time``, one thread): on a machine shared with
other jobs, wall time mostly measures the wait for a core. ``--optimizer`` picks the Trainer's
AdamW (``adamw_torch``, torch's single-tensor loop on CPU, or ``adamw_torch_fused``); figures
for another optimizer than the default go to ``masked_step_<optimizer>.json``.

``--profile`` instead runs GradDiff dense / masked (dense state) / masked (selected state)
``--repeats`` times in turn, this checkout only, under the profiler, and writes each op's self CPU time per step
and the ops whose time differs most between masked and dense to
``masked_step_profile.json``, with the time of ``torch.sqrt`` over 1M normal floats and over
1M zeros (dense-state masked AdamW takes the square root of the unselected entries' second
moments, which are exactly 0 unless filled). ``--zeros`` times AdamW's step (torch's single-tensor
loop and the fused kernel) on 1.57M entries whose second moments are 0 on a random half vs set
to 1.0 there, ``--repeats`` rounds in turn, to ``masked_step_zeros.json``.

"after" is this checkout's ``src/``; "before" is ``src/`` of the git revision ``--before``
(default: the last commit before the hot-path rework), unpacked with ``git archive``. Each
variant runs in child processes with its tree first on ``PYTHONPATH``, and the variants
alternate (before, after, after, before, ...) so that load from other processes hits both;
each child runs the jobs forwards or backwards in turn (dense first, then dense last), so that
a drift in load within a child hits dense and masked alike.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/masked_step.py [--repeats 4] [--steps 12]
        [--ratios 0.5 0.95] [--optimizer adamw_torch_fused] [--accumulation 1 4] [--profile]

Prints the figures and writes them to benchmarks/results/masked_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from machine import machine_note  # benchmarks/machine.py (this script's folder)
from revisions import extract_src  # benchmarks/revisions.py (this script's folder)

RESULTS = Path(__file__).parent / "results" / "masked_step.json"
ROOT = Path(__file__).resolve().parent.parent
BEFORE = "a555208"  # main before the hot-path rework (issue 19, item 2)


class StepTimer(TrainerCallback):
    """Seconds of every optimizer step, and of the optimizer's own step within it."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.optimizer_times: list[float] = []
        self._start = self._optimizer_start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.process_time()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self._optimizer_start = time.process_time()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.optimizer_times.append(time.process_time() - self._optimizer_start)

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.process_time() - self._start)


def random_examples(n: int, vocab: int, prompt: int, answer: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, prompt + answer), generator=generator).tolist()
    return [{"input_ids": row, "labels": [-100] * prompt + row[prompt:]} for row in ids]


class ProfileSteps(TrainerCallback):
    """Profiles optimizer steps ``start`` to ``stop - 1``: ``self_us`` maps each op to its
    self CPU microseconds over them."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop, self.self_us, self._profile = start, stop, {}, None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.start:
            activities = [torch.profiler.ProfilerActivity.CPU]
            self._profile = torch.profiler.profile(activities=activities)
            self._profile.__enter__()
        if state.global_step == self.stop and self._profile is not None:
            self._profile.__exit__(None, None, None)
            averages = self._profile.key_averages()
            self.self_us = {e.key: e.self_cpu_time_total for e in averages}
            self._profile = None


def time_run(job: dict, scratch: str, callbacks: tuple = ()) -> dict[str, list[float]]:
    """One training run of ``job`` (method, state, ratio, sizes, optimizer): its timed steps
    (the first ``skip`` dropped as warm-up)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from wagle.unlearning import METHODS, MaskedUnlearningTrainer, PairCollator, PairedDataset
    from wagle.unlearning.config import UnlearnConfig
    from wagle.unlearning.run import training_arguments

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=job["vocab"], hidden_size=job["hidden"], intermediate_size=4 * job["hidden"],
        num_hidden_layers=job["layers"], num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    n = job["batch_size"] * job["accumulation"] * (job["steps"] + 1)
    data = PairedDataset(
        random_examples(n, job["vocab"], 24, 40, seed=1),
        random_examples(n, job["vocab"], 24, 40, seed=2),
    )
    mask = None
    if job["state"] != "dense":
        generator = torch.Generator().manual_seed(0)
        mask = {
            name: torch.rand(p.shape, generator=generator) < job["ratio"]
            for name, p in model.named_parameters()
        }
    run = UnlearnConfig(
        model="-", forget="-", retain="-", out="-", method=job["method"], max_steps=job["steps"],
        batch_size=job["batch_size"], gradient_accumulation_steps=job["accumulation"],
        learning_rate=1e-4, weight_decay=0.01, warmup=0, progress=False,
        optimizer=job.get("optimizer", "adamw_torch"),
    )  # fmt: skip
    timer = StepTimer()
    objective = METHODS[job["method"]]()
    trainer = MaskedUnlearningTrainer(
        model=model,
        args=training_arguments(run, scratch),
        train_dataset=data,
        data_collator=PairCollator(0),
        objective=objective,
        mask=mask,
        optimizer_state="full" if job["state"] == "dense" else job["state"],
        callbacks=[timer, *callbacks],
    )
    zeroing, zero = [], trainer.enforcer.zero_unselected_grads

    def timed_zero() -> None:
        start = time.process_time()
        zero()
        zeroing.append(time.process_time() - start)

    trainer.enforcer.zero_unselected_grads = timed_zero
    objective.prepare(model, data, 0)
    trainer.train()
    skip = job["skip"]
    times = {"step": timer.times, "optimizer": timer.optimizer_times, "zeroing": zeroing}
    return {kind: t[skip:] for kind, t in times.items()}


def worker(jobs: list[dict]) -> None:
    """Child process: run ``jobs`` in order with whichever wagle is first on the path."""
    from transformers.utils import logging as hf_logging

    import wagle

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with tempfile.TemporaryDirectory() as scratch:
        results = [time_run(job, scratch) for job in jobs]
    print(json.dumps({"wagle": wagle.__file__, "results": results}))


def run_variant(src: Path, jobs: list[dict]) -> list[dict[str, list[float]]]:
    env = os.environ | {"PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(jobs)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    reply = json.loads(done.stdout.strip().splitlines()[-1])
    assert reply["wagle"].startswith(str(src)), (reply["wagle"], src)  # the tree we meant
    return reply["results"]


def jobs_of(args: argparse.Namespace) -> list[dict]:
    """Per accumulation and method: full and selected at each ratio, each between two dense
    runs (dense, masked, dense, masked, ..., dense)."""
    sizes = {k: getattr(args, k) for k in ("steps", "skip", "batch_size", "hidden", "layers")}
    sizes |= {"vocab": args.vocab, "optimizer": args.optimizer}
    jobs = []
    for accumulation in sorted({1, *args.accumulation}):
        for method in args.methods:
            job = sizes | {"method": method, "accumulation": accumulation}
            dense = job | {"state": "dense", "ratio": 1.0}
            for masked in [job | {"state": s, "ratio": r} for r in args.ratios for s in STATES]:
                jobs += [dense, masked]
            jobs.append(dense)
    return jobs


def sandwich_ratios(jobs: list[dict], results: list[dict]) -> dict[str, float]:
    """Each masked job's median step ÷ the mean of its two dense neighbours' medians."""
    medians = [statistics.median(r["step"]) for r in results]
    return {
        key(job): medians[i] / ((medians[i - 1] + medians[i + 1]) / 2)
        for i, job in enumerate(jobs)
        if job["state"] != "dense"
    }


STATES = ("full", "selected")  # where masked AdamW keeps its state


def key(job: dict) -> str:
    """``method/dense`` or ``method/state/ratio``, and ``/xA`` with A micro-batches a step."""
    tail = f"/x{job['accumulation']}" if job["accumulation"] > 1 else ""
    ratio = "" if job["state"] == "dense" else f"/{job['ratio']:g}"
    return f"{job['method']}/{job['state']}{ratio}{tail}"


def figures_of(times: dict[str, dict[str, list[float]]], ratios: dict, args) -> dict:
    """Medians and ratios, from one variant's ``times[key][kind]`` (every timed step) and
    ``ratios[key]`` (the sandwich ratio of each repeat)."""
    median = {k: {kind: statistics.median(v) for kind, v in t.items()} for k, t in times.items()}
    out: dict = {"median_step_s": {k: round(m["step"], 5) for k, m in median.items()}}
    out["median_optimizer_step_s"] = {k: round(m["optimizer"], 5) for k, m in median.items()}
    out["median_zeroing_s"] = {k: round(m["zeroing"], 5) for k, m in median.items()}
    out["masked_over_dense"] = {k: round(statistics.median(r), 4) for k, r in ratios.items()}
    out["masked_over_dense_range"] = {
        k: [round(min(r), 4), round(max(r), 4)] for k, r in ratios.items()
    }
    out["differing_parts_ms"], out["ratio_from_differing_parts"] = {}, {}
    for k in ratios:
        method, _, _, *tail = k.split("/")  # method/state/ratio[/xA]
        dense = median["/".join([method, "dense", *tail])]
        extra = sum(median[k][kind] - dense[kind] for kind in ("optimizer", "zeroing"))
        out["differing_parts_ms"][k] = round(extra * 1e3, 2)
        out["ratio_from_differing_parts"][k] = round((dense["step"] + extra) / dense["step"], 4)
    out["selective_over_dense_state_optimizer_step"] = {
        f"{m}/{r:g}": round(
            median[f"{m}/selected/{r:g}"]["optimizer"] / median[f"{m}/full/{r:g}"]["optimizer"], 4
        )
        for m in args.methods
        for r in args.ratios
    }
    out["timed_steps"] = {k: len(t["step"]) for k, t in times.items()}
    return out


def sqrt_ms(values: torch.Tensor, repeats: int = 20) -> float:
    """Median CPU milliseconds of ``torch.sqrt(values)`` into a preallocated output."""
    out, times = torch.empty_like(values), []
    for _ in range(repeats):
        start = time.process_time()
        torch.sqrt(values, out=out)
        times.append(time.process_time() - start)
    return round(statistics.median(times) * 1e3, 3)


def profile(args: argparse.Namespace) -> dict:
    """Each op's self CPU ms per step, GradDiff dense vs masked (full and selected state):
    ``--repeats`` rounds of dense, full, selected, each op's median over the rounds."""
    torch.set_num_threads(1)
    job = jobs_of(args)[0] | {"method": "graddiff"}
    rounds: dict[str, list[dict[str, float]]] = {"dense": [], **{s: [] for s in STATES}}
    steps: dict[str, list[float]] = {s: [] for s in rounds}
    optimizer: dict[str, list[float]] = {s: [] for s in rounds}
    for _ in range(args.repeats):
        for state in rounds:
            profiler = ProfileSteps(args.skip, args.steps - 1)  # the last step begins
            with tempfile.TemporaryDirectory() as scratch:
                ratio = 1.0 if state == "dense" else args.ratios[0]
                times = time_run(job | {"state": state, "ratio": ratio}, scratch, (profiler,))
            count = args.steps - 1 - args.skip
            rounds[state].append({k: v / count / 1e3 for k, v in profiler.self_us.items()})
            steps[state] += times["step"]
            optimizer[state] += times["optimizer"]
    per_step = {
        state: {
            op: statistics.median(r.get(op, 0.0) for r in runs)
            for op in set().union(*(r.keys() for r in runs))
        }
        for state, runs in rounds.items()
    }
    step_ms = {k: round(statistics.median(v) * 1e3, 2) for k, v in steps.items()}
    optimizer_ms = {k: round(statistics.median(v) * 1e3, 2) for k, v in optimizer.items()}
    out: dict = {"median_step_ms": step_ms, "median_optimizer_step_ms": optimizer_ms}
    out["clock"] = "steps: process CPU time; ops: the profiler's self time (inflated by it)"
    out["self_cpu_ms_per_step"] = {}
    for state in STATES:
        ops = set(per_step[state]) | set(per_step["dense"])
        diff = {k: per_step[state].get(k, 0.0) - per_step["dense"].get(k, 0.0) for k in ops}
        top = sorted(diff, key=lambda k: -abs(diff[k]))[:12]
        out["self_cpu_ms_per_step"][f"{state} - dense"] = {
            k: [round(per_step[state].get(k, 0.0), 3), round(per_step["dense"].get(k, 0.0), 3)]
            for k in top
        }
    generator = torch.Generator().manual_seed(0)
    normal = torch.rand(1 << 20, generator=generator) * 1e-6 + 1e-9
    half = torch.where(torch.rand(1 << 20, generator=generator) < 0.5, normal, 0.0)
    out["torch_sqrt_ms_1M"] = {
        "normal floats": sqrt_ms(normal),
        "zeros": sqrt_ms(torch.zeros(1 << 20)),
        "half zeros": sqrt_ms(half),
    }
    return out


def adamw_step_ms(fused: bool, fill: bool, n: int, steps: int = 30) -> float:
    """Median CPU ms of an AdamW step (no decay) on one tensor of ``n`` entries whose
    gradient is 0 on a random half (as a masked one's), its second moments there 0, or set to
    1.0 after the first step (``MaskEnforcer.keep_second_moments_normal``)."""
    generator = torch.Generator().manual_seed(0)
    keep = torch.rand(n, generator=generator) < 0.5
    param = torch.nn.Parameter(torch.randn(n, generator=generator))
    kind = {"fused": True} if fused else {"foreach": False}  # the Trainer's two AdamWs
    optimizer = torch.optim.AdamW([param], lr=1e-4, weight_decay=0.0, **kind)
    times = []
    for step in range(steps):
        param.grad = torch.randn(n, generator=generator) * keep
        start = time.process_time()
        optimizer.step()
        times.append(time.process_time() - start)
        if step == 0 and fill:
            optimizer.state[param]["exp_avg_sq"].masked_fill_(~keep, 1.0)
    return statistics.median(times[2:]) * 1e3


def zeros(args: argparse.Namespace) -> dict:
    """AdamW's step with the unselected second moments 0 vs filled, ``--repeats`` rounds in
    turn, and ``torch.sqrt`` of zeros vs normal floats."""
    torch.set_num_threads(1)
    n = 1_572_864  # the default model's trainable weights
    runs: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for optimizer in ("adamw_torch", "adamw_torch_fused"):
            for fill in (False, True):
                name = f"{optimizer}, v {'1.0' if fill else '0'} where not selected"
                ms = adamw_step_ms(optimizer == "adamw_torch_fused", fill, n)
                runs.setdefault(name, []).append(ms)
    generator = torch.Generator().manual_seed(0)
    normal = torch.rand(1 << 20, generator=generator) * 1e-6 + 1e-9
    return {
        "adamw_step_ms_median_of_rounds": {
            k: round(statistics.median(v), 3) for k, v in runs.items()
        },
        "adamw_step_ms_rounds": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "entries": n,
        "torch_sqrt_ms_1M": {
            "normal floats": sqrt_ms(normal),
            "zeros": sqrt_ms(torch.zeros(1 << 20)),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--methods", nargs="+", default=["graddiff"])
    parser.add_argument(
        "--ratios", type=float, nargs="+", default=[0.5, 0.95], help="fractions selected"
    )
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--skip", type=int, default=2, help="warm-up steps not timed")
    parser.add_argument("--repeats", type=int, default=4, help="before/after run pairs")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--accumulation", type=int, nargs="+", default=[1, 4],
        help="micro-batches per optimizer step (1 always runs)",
    )  # fmt: skip
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument(
        "--before", default=BEFORE, help="git revision of the 'before' code ('none': after only)"
    )
    parser.add_argument("--optimizer", default="adamw_torch", help="the Trainer's optim")
    parser.add_argument("--tag", default="", help="results in masked_step[_optim]_<tag>.json")
    parser.add_argument("--profile", action="store_true", help="per-op profile (see above)")
    parser.add_argument("--zeros", action="store_true", help="AdamW on zero moments (see above)")
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.profile:
        figures = {"optimizer": args.optimizer, "mask_ratio": args.ratios[0]} | profile(args)
        figures["note"] = f"{machine_note()}; profiler times"
        print(json.dumps(figures, indent=2))
        (RESULTS.parent / "masked_step_profile.json").write_text(
            json.dumps(figures, indent=2) + "\n"
        )
        return None
    if args.zeros:
        figures = zeros(args) | {"clock": "process CPU time, one thread"}
        figures["note"] = f"{machine_note()}; rounds alternate"
        print(json.dumps(figures, indent=2))
        (RESULTS.parent / "masked_step_zeros.json").write_text(json.dumps(figures, indent=2) + "\n")
        return None
    jobs = jobs_of(args)
    variants = ("after",) if args.before == "none" else ("before", "after")
    times: dict[str, dict[str, dict[str, list[float]]]] = {v: {} for v in variants}
    ratios: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"after": ROOT / "src"}
        if "before" in variants:
            trees["before"] = extract_src(args.before, Path(tmp))
        for repeat in range(args.repeats):
            for variant in variants if repeat % 2 == 0 else variants[::-1]:
                order = jobs if (repeat + (variant == "after")) % 2 == 0 else jobs[::-1]
                results = run_variant(trees[variant], order)
                for job, result in zip(order, results, strict=True):
                    slot = times[variant].setdefault(key(job), {k: [] for k in result})
                    for kind in slot:
                        slot[kind] += result[kind]
                for k, ratio in sandwich_ratios(order, results).items():
                    ratios[variant].setdefault(k, []).append(ratio)
    figures = {
        "before_revision": args.before,
        "mask_ratios": args.ratios,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "accumulation": sorted({1, *args.accumulation}),
        "model": {"hidden": args.hidden, "layers": args.layers, "vocab": args.vocab},
        "torch_threads": 1,
        "machine": machine_note(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "clock": "process CPU time, one thread",
        "note": "before and after alternate" if "before" in variants else "after only",
    }
    for variant in variants:
        figures[variant] = figures_of(times[variant], ratios[variant], args)
    print(json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    stem = "masked_step" + ("" if args.optimizer == "adamw_torch" else f"_{args.optimizer}")
    path = RESULTS.with_stem(stem + (f"_{args.tag}" if args.tag else ""))
    path.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
