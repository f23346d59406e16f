"""The loss of an optimizer step, normalised over the whole step (gradient accumulation, DDP).

A step's gradient is accumulated over ``gradient_accumulation_steps`` micro-batches and averaged
by DDP over the processes. A method returns each term of its loss as a mean over its
micro-batch, in one of these units (``Objective.normalised_by`` says which, term by term):

    forget_tokens, retain_tokens         labelled answer tokens (token-mean NLL, KL)
    forget_positions, retain_positions   non-padding positions (RMU's hidden-state distances)
    sequences                            forget samples (per-sequence losses: NPO, SimNPO)

and any unit of the method's own (``Objective.own_units``, counted by its ``count_units``).
The trainer counts each unit over the step's micro-batches on every process (``step_counts``,
one all-reduce of five numbers, no host sync) and scales each term by its micro-batch's share
of the step (``shares``: micro-batch count / step count). Summed over the micro-batches, a
term is then its mean over the whole step: accumulating 2 micro-batches of b samples gives
the gradient of one batch of 2b, and 2 processes × b that of 1 × 2b (tested). The trainer
multiplies the loss by the number of processes, which DDP's average divides out again.

A term mean over an empty count (a micro-batch without labelled tokens) is 0, and so is its
share; a step count of 0 is taken as 1.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from wagle.sequence import labelled

UNITS = ("forget_tokens", "retain_tokens", "forget_positions", "retain_positions", "sequences")


def units_of(objective: Any = None) -> tuple[str, ...]:
    """``UNITS`` and the objective's own units, in the order ``counts`` counts them."""
    return UNITS + tuple(getattr(objective, "own_units", ()))


def counts(
    forget: dict[str, torch.Tensor], retain: dict[str, torch.Tensor], objective: Any = None
) -> torch.Tensor:
    """The micro-batch's count of each unit of ``units_of(objective)``, fp32 [5 + own] on
    its device (the sample count is a fill on the device, not a copy from the host, which
    would wait)."""
    ids = forget["input_ids"]
    own = [] if objective is None else objective.count_units(forget, retain)
    return torch.stack(
        [
            labelled(forget["labels"]).sum(),
            labelled(retain["labels"]).sum(),
            forget["attention_mask"].sum(),
            retain["attention_mask"].sum(),
            torch.full((), ids.shape[0], device=ids.device),
            *own,
        ]
    ).float()


def step_counts(batches: list[dict], objective: Any = None) -> torch.Tensor:
    """Each unit counted over the step's micro-batches (collated forget/retain batches) on
    every process: fp32 [5 + own], summed by an all-reduce when several processes run."""
    total = torch.stack([counts(b["forget"], b["retain"], objective) for b in batches]).sum(0)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total)
    return total


def shares(
    micro: torch.Tensor, step: torch.Tensor | None, units: tuple[str, ...] = UNITS
) -> dict[str, torch.Tensor]:
    """Each unit's share of the step that the micro-batch holds (1 without ``step``)."""
    if step is None:
        return {unit: torch.ones((), device=micro.device) for unit in units}
    ratio = micro / step.clamp(min=1)
    return dict(zip(units, ratio.unbind(), strict=True))


def step_loss(
    terms: dict[str, torch.Tensor], normalised_by: dict[str, str], share: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Σ term × its unit's share over the parts ``normalised_by`` names: the micro-batch's
    contribution to the step's loss."""
    return sum(terms[part] * share[unit] for part, unit in normalised_by.items())
