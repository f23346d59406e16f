"""Experiment tracking: the Trainer's ``report_to`` (TensorBoard, Weights & Biases, MLflow),
with wagle's own figures logged at their steps.

``attach(trainer, config, out)`` adds one callback to a ``MaskedUnlearningTrainer`` built with
``report_to`` set (``training_arguments``). At every optimizer step it logs the step's loss
terms (``loss``, ``forget``, ``retain``, ``forget_nll``, ``retain_nll``, ``lr``: the entry of
``trainer.step_log``), and every trajectory point as ``eval_<figure>`` at the point's step:
``forget_quality`` (and ``log10_forget_quality``, readable on a linear axis), ``forget_prob``,
``forget_rouge``, ``retain_prob``, ``retain_rouge``, ``model_utility``, ``repetition``,
``rouge_gap`` and ``degenerate`` (0/1). It logs through ``Trainer.log``, so each tracker's own
transformers integration writes it (TensorBoard and W&B show ``eval_*`` as ``eval/*``, the rest
as ``train/*``); the integrations are moved after it, so that the point measured at the last
step is written before they close their runs.

Runs and groups: the run is named ``config.run_name`` (default: the output directory's name);
``config.run_group`` (``wagle run`` sets the experiment's name, and each cell is a run of it)
becomes the W&B group (``WANDB_RUN_GROUP``) and the MLflow experiment (``MLFLOW_EXPERIMENT_NAME``)
unless those are set already. TensorBoard writes under ``<out>/runs/<run name>``, so
``tensorboard --logdir`` on an experiment directory shows every cell as a run.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback, get_reporting_integration_callbacks

TRACKING_DIR = "runs"  # under the output directory: TensorBoard's event files
POINT_FIGURES = (
    "forget_quality",
    "forget_prob",
    "forget_rouge",
    "retain_prob",
    "retain_rouge",
    "model_utility",
    "repetition",
    "rouge_gap",
    "degenerate",
)


def run_name(config: Any, out: Path | None) -> str:
    return config.run_name or (Path(out).name if out is not None else "wagle")


def attach(trainer: Any, config: Any, out: Path | None) -> None:
    """Log ``trainer``'s steps and trajectory points to the trackers of ``config.report_to``."""
    if not config.report_to:
        return
    if config.run_group:
        os.environ.setdefault("WANDB_RUN_GROUP", config.run_group)
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", config.run_group)
    handler = trainer.callback_handler
    integrations = tuple(get_reporting_integration_callbacks(config.report_to))
    moved = [cb for cb in handler.callbacks if isinstance(cb, integrations)]
    for callback in moved:
        handler.remove_callback(callback)
    handler.add_callback(TrackingCallback(trainer))
    for callback in moved:  # after ours: the last point is logged before they close
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            root = Path(out) if out is not None else Path(trainer.args.output_dir)
            callback.logging_dir = str(root / TRACKING_DIR / run_name(config, out))
        handler.add_callback(callback)


def point_metrics(point: dict[str, Any]) -> dict[str, float]:
    """``eval_<figure>`` of a trajectory point (figures that are None are left out)."""
    logs = {f"eval_{k}": float(point[k]) for k in POINT_FIGURES if point.get(k) is not None}
    quality = point.get("forget_quality")
    if quality is not None:
        logs["eval_log10_forget_quality"] = math.log10(max(quality, 1e-300))
    return logs


class TrackingCallback(TrainerCallback):
    """Logs the step log's new entries and the trajectory's new points through
    ``trainer.log`` (module doc). A resumed run starts after the points it restored."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.logged_steps = 0
        self.logged_points = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.logged_steps = len(self.trainer.step_log)
        if state.global_step > 0:  # resumed: what was measured before is in the tracker
            self.logged_points = len(self._points())
        self._log_points(state)

    def on_step_end(self, args, state, control, **kwargs):
        for entry in self.trainer.step_log[self.logged_steps :]:
            self._log({k: v for k, v in entry.items() if k not in ("step", "epoch")})
        self.logged_steps = len(self.trainer.step_log)
        self._log_points(state)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._log_points(state)

    def on_train_end(self, args, state, control, **kwargs):
        self._log_points(state)

    def _points(self) -> list[dict[str, Any]]:
        trajectory = self.trainer.trajectory
        return [] if trajectory is None else trajectory.points

    def _log_points(self, state) -> None:
        for point in self._points()[self.logged_points :]:
            self._log(point_metrics(point))
        self.logged_points = len(self._points())

    def _log(self, logs: dict[str, float]) -> None:
        if logs:  # every process: the integrations write on the main one only
            self.trainer.log(logs)
