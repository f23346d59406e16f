"""The one Trainer of wagle: a transformers ``Trainer`` that unlearns under a mask.

The objective (any registered method) is passed in, not subclassed. The trainer overrides
``get_batch_samples`` (count the step's answer tokens, positions and samples over its
micro-batches and processes), ``compute_loss`` (the objective on a forget/retain batch, each
term scaled to its share of the step: ``wagle.unlearning.scaling``; the terms go to the step
log on the device, ``wagle.unlearning.steplog``, which stops the run on a non-finite loss at
its next flush), ``training_step`` (zero unselected gradients after the last micro-batch of a
step, before clipping), ``create_optimizer`` (mask-aware weight decay; or ``SelectiveAdamW``,
whose state covers the selected entries only, under ``optimizer_state``) and ``train`` (load
the selected checkpoint of the trajectory, if any, and verify the mask invariant on the
weights it leaves; resumed from a checkpoint, first restore the step log and the trajectory
saved beside it). Nothing in a training step reads a value back from the device: the step
log is read at logging steps (tested with a profiler trace).
Two callbacks make a resumed run equal an uninterrupted one: the dataset's pairing follows the
epoch (``PairedDataset.set_epoch``), and each checkpoint gets wagle's own state
(``wagle.unlearning.checkpoints``). The mask's checksums are taken at construction, from the
weights the trainer is given (the original model's, also when resuming: the Trainer loads the
checkpoint's weights inside ``train``).
Everything else — AdamW, warm-up and schedule, clipping, accumulating gradients, DDP through
``accelerate launch`` / ``torchrun`` — is the stock Trainer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate.utils import AutocastKwargs
from transformers import PrinterCallback, Trainer, TrainerCallback

from wagle.attribution.masks import Mask
from wagle.io import write_json
from wagle.sharding import is_main_process, reshard
from wagle.unlearning import checkpoints, scaling
from wagle.unlearning.batch import ForgetRetainBatch
from wagle.unlearning.masking import MaskEnforcer
from wagle.unlearning.objective import Objective
from wagle.unlearning.selective_adamw import SelectiveAdamW, use_selective_state
from wagle.unlearning.steplog import LOG_EVERY, StepLog
from wagle.unlearning.trajectory import TrajectoryCallback, select


class MaskedUnlearningTrainer(Trainer):
    """``Trainer(model, args, train_dataset=PairedDataset, data_collator=PairCollator, ...)``
    plus ``objective`` and ``mask`` (None: dense, every trainable weight selected), and
    optionally a ``trajectory`` (evaluation during training; the model ends with its selected
    checkpoint's weights).

    ``step_log`` holds, per optimizer step, the objective's terms over the step's micro-batches
    on every process (``wagle.unlearning.steplog``), the learning rate and the epoch; it is
    complete after ``train``, and up to the last flush during it.
    """

    # compute_loss normalises over the whole step itself (scaling): the Trainer must not
    # divide by the number of micro-batches again
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        *args: Any,
        objective: Objective,
        mask: Mask | None = None,
        trajectory: TrajectoryCallback | None = None,
        optimizer_state: str = "auto",
        run_record: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.objective = objective
        self.enforcer = MaskEnforcer(self.model, mask)
        optim = str(getattr(self.args.optim, "value", self.args.optim))
        self.selective_state = use_selective_state(optimizer_state, mask, self.model, optim)
        if self.selective_state:  # AdamW state for the selected entries only
            selected = {id(p): s for p, s in self.enforcer.partial.values()}
            adam = {"betas": (self.args.adam_beta1, self.args.adam_beta2)}
            adam |= {"lr": self.args.learning_rate, "eps": self.args.adam_epsilon}
            self.optimizer_cls_and_kwargs = (SelectiveAdamW, {"selected": selected} | adam)
        self.steps = StepLog()
        self.trajectory = trajectory
        self.run_record = run_record or {}  # the options a checkpoint records
        if self.args.activation_checkpointing:
            # bf16 autocast caches a bf16 copy of every fp32 weight until its region ends (2
            # bytes a weight: 12.6 GiB at 7B); with checkpointing nothing else keeps them, so
            # casting again at each use costs a little time and saves that memory
            self.accelerator.autocast_handler = AutocastKwargs(cache_enabled=False)
        self.add_callback(_EpochPairing(self))
        self.add_callback(_StepLogger(self))
        if trajectory is not None:  # after the step logger: a point sees its step's log
            trajectory.before_point = self.steps.flush  # a non-finite loss stops it first
            self.add_callback(trajectory)
        self.add_callback(_CheckpointState(self))  # after both: saves what they hold
        if self.args.disable_tqdm:  # quiet means quiet: no printed log dicts either
            self.remove_callback(PrinterCallback)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        reshard(self.model)  # sharded: the DTensors, not a unit left whole by a no_grad pass
        optimizer = super().create_optimizer(model)
        if not self.selective_state:  # SelectiveAdamW decays the selected entries alone
            self.enforcer.make_weight_decay_mask_aware(optimizer)
            self.enforcer.keep_second_moments_normal(optimizer)  # CPU: no sqrt of zeros
        return optimizer

    @property
    def step_log(self) -> list[dict[str, float]]:
        return self.steps.log

    @step_log.setter
    def step_log(self, entries: list[dict[str, float]]) -> None:
        self.steps.log = entries

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """The step's micro-batches, and as ``num_items_in_batch`` the counts of each unit
        over them and every process (``scaling.step_counts``)."""
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        return batches, (scaling.step_counts(batches, self.objective) if batches else None)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        batch = ForgetRetainBatch.from_inputs(inputs)
        # The objective's own frozen models (NPO's live reference, the KL retain term) run in
        # the training precision too: accelerate autocasts only the trained model's forward.
        with self.accelerator.autocast():
            terms = self.objective(model, batch)
        micro = scaling.counts(batch.forget, batch.retain, self.objective)
        share = scaling.shares(micro, num_items_in_batch, scaling.units_of(self.objective))
        loss = scaling.step_loss(terms, self.objective.normalised_by, share)
        self.steps.add(terms, loss, share, self.objective.normalised_by)  # on the device
        loss = loss * self.accelerator.num_processes  # DDP averages the processes' gradients
        return (loss, None) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.sync_gradients:  # the step's gradient is complete (and all-reduced)
            self.enforcer.zero_unselected_grads()
        return loss

    def train(self, resume_from_checkpoint: str | None = None, **kwargs: Any):
        try:
            if resume_from_checkpoint is not None:
                self.restore(Path(resume_from_checkpoint))
            output = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
            self.steps.flush()  # the last steps (raises if one had a non-finite loss)
            self.enforcer.verify()  # the last weights
            if self.trajectory is not None:
                self.trajectory.finish(self.model)
                self.enforcer.verify()  # the selected checkpoint's, which are saved
        finally:
            self.enforcer.remove()
        return output

    def restore(self, checkpoint: Path) -> None:
        """The step log and the trajectory (points, selection, best weights) saved in
        ``checkpoint``; the Trainer restores the rest (weights, optimizer, RNG, data position)."""
        saved = checkpoints.read_state(checkpoint)
        self.step_log = list(saved["step_log"])
        if self.trajectory is None or not saved.get("points"):
            return
        trajectory = self.trajectory
        trajectory.points = saved["points"]
        trajectory.selected, trajectory.criterion = select(
            trajectory.points, trajectory.utility_floor
        )
        best = checkpoint / checkpoints.BEST_FILE
        if best.is_file() and is_main_process():  # the main process alone keeps them
            from safetensors.torch import load_file

            trajectory.best_state = load_file(best)

    def save_state(self, checkpoint: Path) -> None:
        """Write wagle's state into the Trainer's checkpoint folder (main process)."""
        trajectory = self.trajectory
        if trajectory is not None and trajectory.best_state is not None:
            from safetensors.torch import save_file

            best = {n: t.contiguous() for n, t in trajectory.best_state.items()}
            save_file(best, checkpoint / checkpoints.BEST_FILE)
        points = [] if trajectory is None else trajectory.points
        state = self.run_record | {"step_log": self.step_log, "points": points}
        write_json(checkpoint / checkpoints.STATE_FILE, state)  # last: the checkpoint is complete


class _EpochPairing(TrainerCallback):
    """Tell the dataset which epoch starts, so that its pairing does not depend on which
    batches this process fetched (a resumed run skips the trained ones without fetching)."""

    def __init__(self, trainer: MaskedUnlearningTrainer) -> None:
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        dataset = self.trainer.train_dataset
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(int(state.epoch or 0))


class _CheckpointState(TrainerCallback):
    def __init__(self, trainer: MaskedUnlearningTrainer) -> None:
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.trainer.save_state(folder)


class _StepLogger(TrainerCallback):
    """Files each step in the step log; flushes it every ``LOG_EVERY`` steps, before a
    checkpoint is saved and at the last step (the trajectory flushes before each point).
    Every process flushes at the same steps: the flush is a collective."""

    def __init__(self, trainer: MaskedUnlearningTrainer) -> None:
        self.trainer = trainer
        self.lr = 0.0

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else 0.0

    def on_step_end(self, args, state, control, **kwargs):
        steps = self.trainer.steps
        steps.end_step(state.global_step, round(state.epoch or 0.0, 4), self.lr)
        if (
            state.global_step % LOG_EVERY == 0
            or control.should_save
            or control.should_training_stop
        ):
            steps.flush()
