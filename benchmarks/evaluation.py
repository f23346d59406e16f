"""Time a full playground evaluation, before and after a change, side by side in one run.

Runs ``wagle evaluate`` of the target on forget10 (against the retain model's evaluation) with
two versions of the code, alternating ``--repeats`` times so that load on the machine hits
both alike:

- *before*: the ``src/`` of git revision ``--before`` (default: the last commit before the
  evaluation-throughput work, issue 19 item 9), extracted with ``git archive``;
- *after*: this checkout's ``src/``.

Reports the median wall time and CPU time of each (the process end to end: imports, loading,
evaluation; CPU time is the steadier figure on a shared machine) and the ``seconds`` that
``evaluate`` itself records, their ratios, and the largest relative
difference between the two ``eval.json`` files over **every** number in them (per-sample
values, aggregates, forget quality, utility; the run's own ``seconds`` excepted). Then the
parts of one evaluation with this checkout (likelihood passes, generation, membership
inference) as fractions of their sum, and the CPU seconds of four ways to score forget10's
candidate answers (``likelihood_paths``: the old one, two kept steps and one alternative).

Prints the figures and writes them to benchmarks/results/evaluation.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/evaluation.py [--repeats 3] [--before REV]
    .venv/bin/python benchmarks/evaluation.py --playground-dir DIR   # another build (e.g. micro)
    .venv/bin/python benchmarks/evaluation.py --paths-only   # the four ways only, added
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_note  # benchmarks/machine.py (this script's folder)
from revisions import extract_src  # benchmarks/revisions.py (this script's folder)

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "evaluation.json"
BEFORE = "a555208"  # main before issue 19 item 9 (evaluation throughput)
# timings, and the settings of the run (EvalConfig has gained fields since ``before``)
IGNORED = {"seconds", "wall_seconds", "cpu_seconds", "config", "wagle_version"}


def wagle_evaluate(src: Path, model: str, data: str, out: Path, reference: Path | None) -> dict:
    """``wagle evaluate`` from the code in ``src`` in a fresh process; eval.json + wall time."""
    command = [sys.executable, "-m", "wagle", "evaluate", "--model", model, "--data", data]
    command += ["--out", str(out), "--overwrite"]
    command += ["--reference", str(reference)] if reference else []
    env = os.environ | {"PYTHONPATH": str(src)}
    start, used = time.perf_counter(), _children_cpu()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    wall, cpu = time.perf_counter() - start, _children_cpu() - used
    return json.loads((out / "eval.json").read_text()) | {"wall_seconds": wall, "cpu_seconds": cpu}


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far: on a shared
    machine, less sensitive to other jobs than wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def largest_difference(a, b, path: str = "", added: list | None = None) -> tuple[float, str]:
    """(largest relative difference over every number in two JSON values, where); a structural
    difference (lengths, strings, a key present on both sides with another type) is infinite.
    A key on one side only (a metric added to ``wagle evaluate`` since the ``before``
    revision) is not a difference: its path is appended to ``added``."""
    if isinstance(a, dict) and isinstance(b, dict):
        if added is not None:
            added += [f"{path}.{k}" for k in sorted(set(a) ^ set(b)) if k not in IGNORED]
        pairs = [(a[k], b[k], f"{path}.{k}") for k in a if k in b and k not in IGNORED]
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return float("inf"), f"{path}: lengths differ"
        pairs = [(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True))]
    elif isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float):
        return (0.0, path) if a == b else (float("inf"), f"{path}: {a!r} != {b!r}")
    elif isinstance(b, int | float):
        scale = max(abs(a), abs(b))
        return (abs(a - b) / scale if scale else 0.0), path
    else:
        return float("inf"), f"{path}: {a!r} != {b!r}"
    worst = (0.0, path)
    for x, y, where in pairs:
        worst = max(worst, largest_difference(x, y, where, added), key=lambda w: w[0])
    return worst


def differences_by_kind(before: dict, after: dict) -> dict[str, tuple[float, str]]:
    """The largest relative difference among the aggregate figures alone (no per-sample
    value), and among every figure but the raw per-sample NLLs (``*_nll``): a mean NLL near 0
    (a token of probability 0.999 has NLL 1e-3) is resolved by fp32's log-softmax only to
    about 1e-7 absolute, the rounding of a sum of probabilities near 1."""

    def without(value, drop):
        if isinstance(value, dict):
            return {k: without(v, drop) for k, v in value.items() if not drop(k)}
        return value

    return {
        "aggregates": largest_difference(
            without(before, lambda k: k == "per_sample"),
            without(after, lambda k: k == "per_sample"),
        ),
        "all_but_raw_nll": largest_difference(
            without(before, lambda k: k.endswith("_nll")),
            without(after, lambda k: k.endswith("_nll")),
        ),
    }


def parts(model_dir: str, data: str) -> dict[str, float]:
    """Seconds of each part of a target evaluation on forget10 + retain + real world + holdout."""
    from wagle.data.load import load_qa
    from wagle.evaluation.benchmarks import RETAIN_EVAL_SIZE, evenly_spaced
    from wagle.evaluation.generation import generate_answers
    from wagle.evaluation.mia import membership_inference
    from wagle.evaluation.qa import Candidates
    from wagle.models import load_pretrained

    model, tokenizer = load_pretrained(model_dir)
    splits = {s: load_qa(data, s) for s in ("forget10", "real_authors", "world_facts")}
    splits["retain"] = evenly_spaced(load_qa(data, "retain90"), RETAIN_EVAL_SIZE)
    timings = {}
    start = time.perf_counter()
    for name, records in splits.items():
        role = "real_world" if name in ("real_authors", "world_facts") else "forget"
        Candidates(tokenizer, records, role, batch_size=64).likelihoods(model)
    timings["likelihood"] = time.perf_counter() - start
    start = time.perf_counter()
    questions = [r["question"] for rs in splits.values() for r in rs]
    generate_answers(model, tokenizer, questions, progress=False)
    timings["generation"] = time.perf_counter() - start
    start = time.perf_counter()
    membership_inference(model, tokenizer, splits["forget10"], load_qa(data, "holdout"))
    timings["mia"] = time.perf_counter() - start
    return timings


def likelihood_paths(
    model_dir: str, data: str, repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """CPU seconds (median of ``repeats``, alternating) of the mean NLLs of forget10's 7
    candidate answers per question, encoded beforehand, by four paths: ``old`` (full logits
    over every position, one pass per field: answer, paraphrase, perturbed), ``answer_logits``
    (logits at answer positions only, all candidates length-sorted), ``prompt_cache`` (each
    question's prompt run once, its key/value cache reused by its candidates; questions with
    prompts of one length batched together) and ``prefix_tree`` (what the library does); and
    the largest relative difference between mean NLLs of the old path at batch sizes 64 and 7
    (fp32 rounding alone) and between the old path and the prefix tree."""
    import torch

    from wagle.data.batching import iter_batches
    from wagle.data.load import load_qa
    from wagle.evaluation.answer_sets import AnswerSets
    from wagle.evaluation.likelihood import mean_nll
    from wagle.models import load_pretrained
    from wagle.sequence import per_sequence_mean, sequence_nll

    model, tokenizer = load_pretrained(model_dir, device=None)
    records = load_qa(data, "forget10", for_eval=True)
    sets = [[r["answer"], r["paraphrased_answer"], *r["perturbed_answer"]] for r in records]
    prepared = AnswerSets(tokenizer, [r["question"] for r in records], sets, batch_size=64)
    prepared.mean_nll(model)  # builds and keeps its batches, as a trajectory does
    fields = [[g[0] for g in prepared.groups], [g[1] for g in prepared.groups]]
    fields.append([e for g in prepared.groups for e in g[2:]])

    @torch.no_grad()
    def old(batch_size: int = 64) -> torch.Tensor:
        """Mean NLLs [answers, paraphrases, perturbed] the old way."""
        out = []
        for examples in fields:
            order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
            ordered = [examples[i] for i in order]
            values = torch.empty(len(examples))
            batches = iter_batches(ordered, batch_size, tokenizer.pad_token_id)
            values[order] = torch.cat([per_sequence_mean(*sequence_nll(model, b)) for b in batches])
            out.append(values)
        return torch.cat(out)

    flat = [e for g in prepared.groups for e in g]
    paths = {
        "old": old,
        "answer_logits": lambda: mean_nll(model, flat, tokenizer.pad_token_id, 64),
        "prompt_cache": lambda: _prompt_cache_nll(model, prepared.groups, tokenizer.pad_token_id),
        "prefix_tree": lambda: prepared.mean_nll(model),
    }
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, run in paths.items():
            start = time.process_time()
            run()
            seconds[name].append(time.process_time() - start)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    # fp32 rounding depends on what shares a batch: the old path against itself at another
    # batch size is the floor that the new path's differences are to be read against
    tree = prepared.mean_nll(model)
    new = torch.cat([torch.stack([g[0] for g in tree]), torch.stack([g[1] for g in tree])])
    new = torch.cat([new, torch.cat([g[2:] for g in tree])])
    reference = old()
    return medians, {
        "old_batch_64_vs_old_batch_7": _relative(reference, old(7)),
        "old_batch_64_vs_prefix_tree": _relative(reference, new),
    }


def _relative(a, b) -> float:
    """Largest |a - b| / max(|a|, |b|) over two tensors."""
    return float(((a - b).abs() / a.abs().maximum(b.abs())).max())


def _prompt_cache_nll(model, groups, pad_token_id: int, rows: int = 64) -> None:
    """The alternative measured and not kept: per question, the prompt's key/value cache
    (all but its last token) computed once and copied to its candidates' rows."""
    import torch

    from wagle.data.collate import collate
    from wagle.sequence import labelled_token_nll

    by_length: dict[int, list[int]] = {}
    for i, group in enumerate(groups):
        shared = min(e["labels"].index(next(y for y in e["labels"] if y != -100)) for e in group)
        by_length.setdefault(shared - 1, []).append(i)
    with torch.no_grad():
        for shared, questions in by_length.items():
            for start in range(0, len(questions), max(1, rows // 7)):
                batch_questions = questions[start : start + max(1, rows // 7)]
                prefix = [groups[q][0]["input_ids"][:shared] for q in batch_questions]
                cache = model.model(input_ids=torch.tensor(prefix), use_cache=True).past_key_values
                copies = [k for k, q in enumerate(batch_questions) for _ in groups[q]]
                cache.batch_select_indices(torch.tensor(copies))
                rest = [{k: e[k][shared:] for k in ("input_ids", "labels")}
                        for q in batch_questions for e in groups[q]]  # fmt: skip
                batch = collate(rest, pad_token_id)
                ones = torch.ones(len(rest), shared, dtype=torch.long)
                batch["attention_mask"] = torch.cat([ones, batch["attention_mask"]], dim=1)
                labelled_token_nll(model, batch, past_key_values=cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--playground-dir", help="a playground build (default: the built one)")
    parser.add_argument("--before", default=BEFORE, help="git revision of the 'before' code")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each")
    parser.add_argument(
        "--paths-only", action="store_true", help="only the four ways to score the candidates"
    )
    args = parser.parse_args()
    if args.playground_dir:
        root = Path(args.playground_dir)
        data, target, retain = (str(root / d) for d in ("data", "target", "retain-forget10"))
    else:
        from wagle.playground import PlaygroundConfig, load_info

        info = load_info(PlaygroundConfig())
        data, target, retain = info["data"], info["target"], info["retain"]

    if args.paths_only:  # added to the figures already written
        paths, rounding = likelihood_paths(target, data, args.repeats)
        figures = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        figures["forget10_candidates_cpu_seconds"] = paths
        figures["forget10_candidates_largest_relative_difference"] = rounding
        print(json.dumps({"cpu_seconds": paths, "largest_relative_difference": rounding}))
        RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
        return
    after_src = ROOT / "src"
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        before_src = extract_src(args.before, scratch / "before")
        reference = scratch / "reference"
        wagle_evaluate(after_src, retain, data, reference, None)
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for _ in range(args.repeats):
            for name, src in (("before", before_src), ("after", after_src)):
                runs[name].append(wagle_evaluate(src, target, data, scratch / name, reference))
    print({k: [(round(r["wall_seconds"], 1), round(r["cpu_seconds"], 1)) for r in v]
           for k, v in runs.items()}, flush=True)  # fmt: skip
    added: list[str] = []
    difference, where = largest_difference(runs["before"][-1], runs["after"][-1], added=added)
    wall = {k: statistics.median(r["wall_seconds"] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r["cpu_seconds"] for r in v) for k, v in runs.items()}
    inside = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    seconds = parts(target, data)
    total = sum(seconds.values())
    paths, rounding = likelihood_paths(target, data, args.repeats)
    figures = {
        "machine": machine_note(),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "data": data.replace(str(Path.home()), "~", 1),  # no machine paths in git
        "n_forget": runs["after"][-1]["sections"]["forget"]["n"],
        "before_revision": args.before,
        "repeats": args.repeats,
        "wall_seconds_median": wall,
        "cpu_seconds_median": cpu,
        "evaluate_seconds_median": inside,
        "speedup_wall": wall["before"] / wall["after"],
        "speedup_cpu": cpu["before"] / cpu["after"],
        "speedup_evaluate": inside["before"] / inside["after"],
        "every_runs_wall_seconds": {k: [r["wall_seconds"] for r in v] for k, v in runs.items()},
        "every_runs_cpu_seconds": {k: [r["cpu_seconds"] for r in v] for k, v in runs.items()},
        "largest_relative_difference": {"value": difference, "where": where},
        "largest_relative_difference_by_kind": differences_by_kind(
            runs["before"][-1], runs["after"][-1]
        ),
        "only_after": added,  # metrics added since ``before``: nothing to compare with
        "after_parts_seconds": seconds,
        "after_parts_share": {k: v / total for k, v in seconds.items()},
        "forget10_candidates_cpu_seconds": paths,
        "forget10_candidates_largest_relative_difference": rounding,
        "forget_quality": runs["after"][-1]["forget_quality"],
        "model_utility": runs["after"][-1]["model_utility"],
    }
    print(json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
