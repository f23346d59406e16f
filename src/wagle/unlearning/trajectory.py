"""Evaluate while unlearning and keep the best checkpoint (unlearning is not monotone).

A *point* is one evaluation of the model being unlearned, a flat dict with the keys
``POINT_KEYS``. Every figure is computed by the evaluation package, as ``wagle evaluate`` does:

- ``forget_quality``: KS p-value of the per-sample truth ratios of the **whole** forget split
  against the reference (retain model) evaluation's; None without a reference. Truth ratios
  need forward passes only. ``forget_prob`` (length-normalised) is also on the whole split.
  ``forget_quality_half_a`` / ``_half_b``: the same on two fixed halves of the forget authors
  (``wagle.evaluation.halves``: select on one, report the other).
- ``forget_rouge``: ROUGE-L recall of greedy answers to ``forget_size`` forget questions;
  ``repetition``, ``rouge_gap``, ``degenerate`` from those answers
  (``wagle.evaluation.degeneration``).
- ``retain_prob``, ``retain_rouge``, ``model_utility``: on ``retain_size`` records of each
  utility set (retain, real authors, world facts), the same records at every point.

Step 0 (the original model) is the first point. The **selection criterion** (``select``):
among the points after step 0 whose ``model_utility`` ≥ ``utility_floor`` × step 0's and that
are not degenerate, the highest forget quality (without a reference: the lowest forget
probability); ties go to the higher utility, then the earlier step. If no point is eligible the
run keeps its **last** point and says so (``met_floor: false``): the model the run produced,
flagged, rather than the original model handed back as an "unlearned" one.

The selected weights are kept in CPU memory: a copy of every trainable tensor, taken when its
point becomes the best, restored into the model when training ends.

Several processes (DDP): the main process alone evaluates and keeps the copy; it hands each
point, the selection and the early-stopping decision to the others (``wagle.unlearning.ranks``),
so that all of them stop at the same step and select the same point, whatever numbers another
process would have computed; at the end the selected weights go from it to every process.
Evaluating once means the others wait for it: a point must take less than the process group's
timeout (``ddp_timeout``, 30 min by default). Sharded by FSDP2, every process takes part in
the forward passes of each point (the main process's decision still rules) and keeps its own
chunks of the selected weights.

An evaluated epoch's point is measured at its last optimizer step (``on_step_end``), before
the Trainer saves a checkpoint at that step, so that the checkpoint holds it and a run resumed
from there measures what an uninterrupted one does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase, TrainerCallback

from wagle.data.load import Record
from wagle.evaluation import qa
from wagle.evaluation.benchmarks import evenly_spaced
from wagle.evaluation.generation import generate_answers
from wagle.evaluation.halves import HALF_KEYS, forget_halves, half_forget_qualities
from wagle.evaluation.rouge import rouge_l
from wagle.evaluation.summary import summarise
from wagle.io import write_json
from wagle.sharding import is_main_process, local, reshard
from wagle.unlearning import fsdp, ranks

POINT_KEYS = (
    "step",
    "epoch",
    "eval_seconds",
    "forget_quality",
    *HALF_KEYS,
    "forget_prob",
    "forget_rouge",
    "retain_prob",
    "retain_rouge",
    "model_utility",
    "repetition",
    "rouge_gap",
    "degenerate",
)
UTILITY_SETS = ("retain", "real_authors", "world_facts")
TRAJECTORY_FILE = "trajectory.json"


class TrajectoryEvaluator:
    """``evaluator(model) -> figures`` of one point (module doc), on fixed records.

    ``sets`` is ``{section: (role, source, records)}`` as ``benchmarks.qa_sets`` returns it.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        sets: dict[str, tuple[str, str, list[Record]]],
        reference: dict[str, Any] | None = None,
        *,
        forget_size: int = 32,
        retain_size: int = 32,
        batch_size: int = 64,
        max_new_tokens: int = 64,
    ) -> None:
        self.tokenizer, self.reference = tokenizer, reference
        self.forget = sets["forget"][2]
        self.halves = forget_halves(self.forget)
        self.forget_sample = evenly_spaced(self.forget, forget_size)
        self.utility = {
            n: (sets[n][0], evenly_spaced(sets[n][2], retain_size)) for n in UTILITY_SETS
        }
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        # Encoded and packed once: each point then costs forward passes and generations only.
        self.candidates = {"forget": qa.Candidates(tokenizer, self.forget, "forget", batch_size)}
        for name, (role, records) in self.utility.items():
            self.candidates[name] = qa.Candidates(tokenizer, records, role, batch_size)

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> dict[str, Any]:
        was_training = model.training
        model.eval()
        try:
            sections = {"forget": self._forget_section(model)}
            for name, (role, records) in self.utility.items():
                scores = qa.score_qa(
                    model,
                    self.tokenizer,
                    records,
                    role,
                    candidates=self.candidates[name],
                    **self._batching(),
                )
                sections[name] = qa.evaluate_qa(scores, [r["question"] for r in records])
        finally:
            model.train(was_training)
        summary = summarise(sections, self.reference)
        degeneration = summary["degeneration"]
        questions = [r["question"] for r in self.forget]
        truth = sections["forget"]["per_sample"]["truth_ratio"]
        return {
            "forget_quality": summary["forget_quality"],
            **half_forget_qualities(questions, truth, self.reference, self.halves),
            "forget_prob": sections["forget"]["aggregates"]["probability"],
            "forget_rouge": sections["forget"]["aggregates"]["rouge_l_recall"],
            "retain_prob": sections["retain"]["aggregates"]["probability"],
            "retain_rouge": sections["retain"]["aggregates"]["rouge_l_recall"],
            "model_utility": summary["model_utility"],
            "repetition": degeneration["repetition"],
            "rouge_gap": degeneration["rouge_gap"],
            "degenerate": degeneration["degenerate"],
        }

    def _forget_section(self, model: torch.nn.Module) -> dict[str, Any]:
        """Truth ratios and probability on the whole split; answers to the sample only."""
        tok = self.tokenizer
        answer, base, perturbed = self.candidates["forget"].likelihoods(model)
        scores = qa.QAScores(
            role="forget",
            answers=[r["answer"] for r in self.forget],
            answer_nll=answer,
            base_nll=base,
            perturbed_nll=perturbed,
            generations=[],
        )
        truth, probability = qa.truth_ratio(scores), qa.probability(scores)
        questions = [r["question"] for r in self.forget_sample]
        generations = generate_answers(model, tok, questions, **self._batching(), progress=False)
        rouge = rouge_l(generations, [r["answer"] for r in self.forget_sample], "recall")
        return {
            "aggregates": {
                "probability": probability.aggregate,
                "rouge_l_recall": sum(rouge) / len(rouge),
                "truth_ratio": truth.aggregate,
            },
            "per_sample": {"truth_ratio": truth.per_sample, "generation": generations},
        }

    def _batching(self) -> dict[str, int]:
        return {"batch_size": self.batch_size, "max_new_tokens": self.max_new_tokens}


def select(points: list[dict[str, Any]], utility_floor: float) -> tuple[dict, dict]:
    """(selected point, criterion record) of a trajectory by the module's criterion."""
    if not points:
        raise ValueError("no evaluation point to select from")
    start = points[0]
    by_quality = start["forget_quality"] is not None
    threshold = None if start["model_utility"] is None else utility_floor * start["model_utility"]
    eligible = [
        p
        for p in points[1:]
        if not p["degenerate"] and (threshold is None or (p["model_utility"] or 0.0) >= threshold)
    ]
    criterion = {
        "rule": "highest forget_quality" if by_quality else "lowest forget_prob",
        "among": "points after step 0 with model_utility ≥ utility_floor × step 0's, "
        "not degenerate; ties: higher model_utility, then earlier step",
        "utility_floor": utility_floor,
        "utility_threshold": threshold,
        "met_floor": bool(eligible),
    }
    if not eligible:
        criterion["note"] = "no point met the utility floor and non-degeneration: kept the last"
        return points[-1], criterion

    def score(p: dict[str, Any]) -> tuple:
        figure = p["forget_quality"] if by_quality else -p["forget_prob"]
        return (figure, p["model_utility"] or 0.0, -p["step"])

    return max(eligible, key=score), criterion


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of every trainable tensor (what unlearning may change); of a sharded one,
    this process's chunk."""
    return {
        n: local(p).detach().to("cpu", copy=True)
        for n, p in reshard(model).named_parameters()
        if p.requires_grad
    }


@torch.no_grad()
def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` (from ``trainable_state``) back into ``model``'s parameters."""
    params = dict(reshard(model).named_parameters())
    for name, value in state.items():
        local(params[name]).copy_(value)


class TrajectoryCallback(TrainerCallback):
    """Evaluates at step 0, on the schedule and at the last step; keeps the best weights.

    ``every`` > 0: every that many optimizer steps; else every ``epochs``-th epoch end.
    ``early_stop`` > 0 stops training once the selected point is that many evaluations old
    (only while some point meets the floor). ``path``: where ``trajectory.json`` is rewritten
    after every point (main process only). Only the main process evaluates and keeps the best
    weights; the others receive each point and decision from it (module doc).
    ``start_point``: the step-0 point measured already (same model, same evaluator: ``wagle
    run`` shares it between cells), taken as it is instead of measured again.
    """

    def __init__(
        self,
        evaluator: Callable[[torch.nn.Module], dict[str, Any]],
        *,
        every: int = 0,
        epochs: int = 1,
        utility_floor: float = 0.95,
        early_stop: int = 0,
        keep_last: bool = False,
        path: Path | None = None,
        log: Callable[[str], None] = print,
        start_point: dict[str, Any] | None = None,
    ) -> None:
        self.evaluator, self.every, self.epochs = evaluator, every, epochs
        self.start_point = start_point
        self.utility_floor, self.early_stop, self.keep_last = utility_floor, early_stop, keep_last
        self.path, self.log = path, log
        self.points: list[dict[str, Any]] = []
        self.selected: dict[str, Any] | None = None
        self.criterion: dict[str, Any] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.last_state: dict[str, torch.Tensor] | None = None
        # called on every process before a point is measured (the trainer flushes its step
        # log there, so a non-finite loss stops the run before the model is evaluated)
        self.before_point: Callable[[], None] = lambda: None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.points:  # a resumed run has its points back (MaskedUnlearningTrainer.restore)
            return
        if self.start_point is not None:
            self._add(state, control, model, given=self.start_point)
        else:
            self._measure(state, control, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step % self.every == 0:
            self._measure(state, control, model)
        elif not self.every and _ends_epoch(state) and round(state.epoch) % self.epochs == 0:
            self._measure(state, control, model)  # before the Trainer saves at this step

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self._new_step(state):
            self._measure(state, control, model)

    def finish(self, model: torch.nn.Module) -> None:
        """After training: keep the last weights if asked, then load the selected ones (kept
        by the main process and handed to the others; sharded, each process its chunks)."""
        sharded = fsdp.is_sharded_model(model)
        if self.keep_last:  # sharded: whole tensors, gathered on the main process (a collective)
            whole = fsdp.whole_state(model)
            if whole is not None or is_main_process():
                self.last_state = trainable_state(model) if whole is None else whole
        if self.selected is not None and self.selected is not self.points[-1]:
            if sharded or is_main_process():  # an earlier point: it met the floor, was copied
                load_state(model, self.best_state)
            if not sharded:
                params = dict(model.named_parameters())
                ranks.weights_from_main([params[n] for n in _trainable_names(model)])
        self.best_state = None

    def record(self) -> dict[str, Any]:
        """What ``trajectory.json`` holds."""
        return {"criterion": self.criterion, "points": self.points, "selected": self.selected}

    def _new_step(self, state) -> bool:
        return not self.points or self.points[-1]["step"] != state.global_step

    def _measure(self, state, control, model: torch.nn.Module) -> None:
        """Measure a point on the main process, decide there, and let every process follow."""
        self._add(state, control, model)

    def _add(self, state, control, model: torch.nn.Module, given: dict | None = None) -> None:
        """Add a point, measured or ``given``, with the main process's decision."""
        self.before_point()
        # Sharded (FSDP2), every process takes part in the forward passes and keeps its chunks.
        every_process = fsdp.is_sharded_model(model)
        outcome = (
            self._evaluate(state, model, given) if every_process or is_main_process() else None
        )
        point, chosen, self.criterion, stop = ranks.from_main(outcome)
        self.points.append(point)
        self.selected = self.points[chosen]
        keeps = every_process or is_main_process()
        if self.selected is point and self.criterion["met_floor"] and keeps:
            self.best_state = trainable_state(model)
        control.should_training_stop |= stop
        if is_main_process():
            if self.path is not None:
                write_json(self.path, self.record())
            self.log(progress_line(point, self.selected, stop))

    def _evaluate(
        self, state, model: torch.nn.Module, given: dict | None = None
    ) -> tuple[dict, int, dict, bool]:
        """(the new point, the index of the selected one, the criterion, stop?): the main
        process's decision."""
        if given is not None:
            point = dict(given)
        else:
            start = time.perf_counter()
            figures = self.evaluator(model)
            point = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
            point |= {"eval_seconds": round(time.perf_counter() - start, 3)} | figures
        points = [*self.points, point]
        selected, criterion = select(points, self.utility_floor)
        age = sum(1 for p in points if p["step"] > selected["step"])
        stop = bool(self.early_stop and criterion["met_floor"] and age >= self.early_stop)
        return point, points.index(selected), criterion, stop


def _ends_epoch(state) -> bool:
    """Whether the step that just ended is its epoch's last: the Trainer sets ``state.epoch``
    to epoch + (micro-batch + 1) / micro-batches per epoch, a whole number exactly there."""
    return state.epoch is not None and state.epoch > 0 and state.epoch == int(state.epoch)


def _trainable_names(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def progress_line(point: dict[str, Any], selected: dict[str, Any], stopping: bool) -> str:
    """``step 26 | forget quality 1.2e-05 | utility 0.81 | best: step 26 (1.2e-05)``."""

    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:.3g}"

    key = "forget_quality" if selected["forget_quality"] is not None else "forget_prob"
    best = f"step {selected['step']} ({fmt(selected[key])})"
    flag = " | degenerate" if point["degenerate"] else ""
    stop = " | early stop" if stopping else ""
    return (
        f"step {point['step']} | forget quality {fmt(point['forget_quality'])} | forget prob "
        f"{fmt(point['forget_prob'])} | utility {fmt(point['model_utility'])}{flag} | "
        f"best: {best} [{point['eval_seconds']:.1f} s]{stop}"
    )
