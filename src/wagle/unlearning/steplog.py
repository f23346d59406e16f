"""The step log: each optimizer step's loss terms, kept on the device until a logging step.

Reading a number off an accelerator waits for every kernel queued before it, so nothing here
does that per micro-batch. ``add`` adds a micro-batch's terms, already scaled to their share
of the step (``wagle.unlearning.scaling``), to the step's running sums on the device, with a
0/1 flag for a non-finite loss; ``end_step`` files the step's sums with its step, epoch and
learning rate (host values). ``flush`` (at logging steps, before a checkpoint is saved or a
trajectory point is measured, and at the end) sums the pending steps over the processes (one
all-reduce), turns them into floats (one copy to the host) and appends them to ``log``; if any
step had a non-finite loss it raises then, on every process at once: the processes flush at
the same steps and read the same all-reduced flags, so all of them stop and none is left
waiting in a collective.

Each logged term is the step's value over every micro-batch of every process: ``loss`` the
objective, ``forget_nll`` / ``retain_nll`` token means, other terms in the unit the method
declares (per forget sample by default).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from wagle.errors import WagleError

LOG_EVERY = 10  # optimizer steps between two flushes when nothing else asks for one
LOGGED_UNITS = {"forget_nll": "forget_tokens", "retain_nll": "retain_tokens"}


class StepLog:
    def __init__(self) -> None:
        self.log: list[dict[str, float]] = []
        self.names: list[str] | None = None  # the terms, fixed by the first micro-batch
        self._step: torch.Tensor | None = None  # running sums of the current step [terms + 1]
        self._pending: list[tuple[dict[str, Any], torch.Tensor]] = []

    def add(
        self,
        terms: dict[str, torch.Tensor],
        loss: torch.Tensor,
        share: dict[str, torch.Tensor],
        normalised_by: dict[str, str],
    ) -> None:
        """Add a micro-batch: ``loss`` its scaled contribution, ``terms`` its means."""
        if self.names is None:
            self.names = ["loss", *(k for k in terms if k != "loss")]
        units = LOGGED_UNITS | normalised_by
        values = [loss.detach()]
        values += [terms[k].detach() * share[units.get(k, "sequences")] for k in self.names[1:]]
        values.append((~torch.isfinite(loss.detach())).float())
        row = torch.stack([v.float() for v in values])
        self._step = row if self._step is None else self._step + row

    def end_step(self, step: int, epoch: float, lr: float) -> None:
        if self._step is not None:
            self._pending.append(({"step": step, "epoch": epoch, "lr": lr}, self._step))
        self._step = None

    def flush(self) -> None:
        """Append the pending steps to ``log`` as floats; raise if a loss was not finite."""
        if not self._pending:
            return
        values = torch.stack([row for _, row in self._pending])  # [steps, terms + 1]
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(values)
        rows = values.tolist()  # the one wait for the device
        entries = [
            meta | dict(zip(self.names, row[:-1], strict=True))
            for (meta, _), row in zip(self._pending, rows, strict=True)
        ]
        self._pending.clear()
        bad = [entry for entry, row in zip(entries, rows, strict=True) if row[-1] > 0]
        if bad:
            details = ", ".join(f"{k}={bad[0][k]:.4g}" for k in self.names)
            raise WagleError(
                f"the loss became non-finite at step {bad[0]['step']} ({details}); "
                "lower the learning rate or check the data; nothing was saved"
            )
        self.log.extend(entries)
