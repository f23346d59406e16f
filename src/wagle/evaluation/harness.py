"""General utility with lm-eval-harness: ``wagle evaluate --benchmark lm-eval --tasks mmlu,...``.

The already-loaded model runs through lm-eval's Python API (``HFLM`` wraps a loaded
``PreTrainedModel``; ``simple_evaluate`` runs the tasks), the way WMDP, RMU and WAGLE report
MMLU and WMDP accuracy. Each task (or task group, such as ``mmlu``) becomes one section of
``eval.json`` named after it: its metrics as aggregates (``acc``, ``acc_norm``, their
``_stderr``; lm-eval's ``,none`` filter suffix dropped), and for a single task the per-document
values of each metric. ``--task-dir`` adds a directory of task YAML files (local tasks over local
data files); ``--limit`` and ``--num-fewshot`` are passed through.

lm-eval is an optional extra (``pip install 'wagle[lm-eval]'``): without it, ``check`` fails
with one line before any model is loaded.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

from wagle.errors import WagleError
from wagle.evaluation.benchmarks import BENCHMARKS, Benchmark, Sections
from wagle.evaluation.config import EvalConfig, lm_eval_tasks
from wagle.extras import require


def check(config: EvalConfig) -> None:
    """Before the model loads: the extra is installed, ``--task-dir`` is a directory and every
    task of ``--tasks`` is known to lm-eval (indexing its own tasks takes ~10 s)."""
    require("lm_eval", "--benchmark lm-eval", "pip install 'wagle[lm-eval]'")
    tasks = lm_eval_tasks(config.tasks)  # not empty: EvalConfig checked it
    if config.task_dir and not Path(config.task_dir).is_dir():
        raise WagleError(f"--task-dir {config.task_dir} is not a directory")
    known = task_manager(config.task_dir, tuple(tasks)).all_tasks
    if unknown := [t for t in tasks if t not in known]:
        raise WagleError(f"unknown lm-eval task(s) {unknown}; `lm-eval ls tasks` lists them")


@functools.lru_cache(maxsize=4)
def task_manager(task_dir: str, tasks: tuple[str, ...]) -> Any:
    """lm-eval's ``TaskManager`` with ``task_dir``'s tasks: those alone when they are all the
    tasks asked for (indexed in under a second), else with lm-eval's own."""
    from lm_eval.tasks import TaskManager

    if task_dir:
        manager = TaskManager(include_path=task_dir, include_defaults=False)
        if set(tasks) <= set(manager.all_tasks):
            return manager
    return TaskManager(include_path=task_dir or None)


def run(model, tokenizer, config: EvalConfig) -> Sections:
    """One section per task of ``config.tasks``, from lm-eval's ``simple_evaluate``."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    tasks = lm_eval_tasks(config.tasks)
    lm = HFLM(
        pretrained=model.eval(),
        tokenizer=tokenizer,
        batch_size=config.batch_size,
        device=str(model.device),
    )
    results = simple_evaluate(
        model=lm,
        tasks=tasks,
        num_fewshot=config.num_fewshot,
        limit=config.limit or None,
        task_manager=task_manager(config.task_dir, tuple(tasks)),
        log_samples=True,
        verbosity="ERROR",
    )
    return {task: task_section(results, task) for task in tasks}


def task_section(results: dict[str, Any], task: str) -> dict[str, Any]:
    """The section of one task (or group) of lm-eval's results: the task's metrics (and their
    standard errors) as aggregates; per document, the values of each metric of a single task."""
    is_group = task in results.get("groups", {})
    metrics = results["groups" if is_group else "results"][task]
    names = list(results.get("higher_is_better", {}).get(task, {}))
    aggregates = {}
    for key, value in metrics.items():
        name = key.split(",")[0]
        if name in names or name.removesuffix("_stderr") in names:
            with contextlib.suppress(TypeError, ValueError):  # a stderr of "N/A"
                aggregates[name] = float(value)
    counts = results.get("n-samples", {})
    members = results.get("group_subtasks", {}).get(task, []) if is_group else [task]
    n = sum(counts.get(t, {}).get("effective", 0) for t in members)
    samples = [] if is_group else results.get("samples", {}).get(task, [])
    per_sample = {m: [float(s[m]) for s in samples] for m in names if samples and m in samples[0]}
    return {"n": n, "aggregates": aggregates, "per_sample": per_sample}


BENCHMARKS["lm-eval"] = Benchmark(run, check)
