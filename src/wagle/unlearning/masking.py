"""Exact masked training: every weight outside the mask stays bit-for-bit unchanged.

Masking gradients alone is not enough: AdamW's decoupled weight decay shrinks every weight it
is given (DESIGN.md §6). The mechanism, which needs no copy of the weights:

- a parameter with nothing selected is frozen (``requires_grad=False``): no optimizer sees it;
- a partly selected one has the unselected entries of its gradient set to exactly 0 once
  the gradient of an optimizer step is complete (accumulated and all-reduced) and before it
  is clipped: ``zero_unselected_grads``, in place. From step 0 Adam's moments of those
  entries stay 0, so its update there is 0/(0+ε) = 0, and p − 0 = p;
- such a parameter's weight decay is taken out of the optimizer and applied before each step
  as p ← p·f with f = 1 − lr·wd where selected and exactly 1.0 elsewhere (p·1.0 = p);
- a fully selected parameter is left alone: dense unlearning is the all-True mask, nothing
  else, so it costs nothing.

``verify`` re-checks the invariant after training from integer checksums of the unselected
entries taken before it, and raises if any moved (e.g. with an optimizer outside
``EXACT_OPTIMIZERS``, whose update of a zero-gradient entry may not be zero).

A model sharded by FSDP2 (``wagle.unlearning.fsdp``): the same on each process's chunks; the
checksums cover every chunk (summed over the processes).
"""

from __future__ import annotations

import torch

from wagle.attribution.masks import Mask, check_mask
from wagle.errors import WagleError
from wagle.sharding import local
from wagle.unlearning.config import EXACT_OPTIMIZERS
from wagle.unlearning.fsdp import checksum, mask_chunk


def full_mask(model: torch.nn.Module) -> Mask:
    """The all-True mask: dense unlearning."""
    return {name: torch.ones_like(p, dtype=torch.bool) for name, p in model.named_parameters()}


class MaskEnforcer:
    """Installs the mechanism above on ``model`` for ``mask``.

    ``mask=None`` selects every trainable weight; a parameter the mask does not name is
    not selected (a mask lists what may change).
    """

    def __init__(self, model: torch.nn.Module, mask: Mask | None) -> None:
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if mask is not None:
            check_mask(mask, model)
            if not any(bool(mask[n].any()) for n in params if n in mask):
                raise WagleError("the mask selects no trainable weight: nothing could change")
        self.frozen: list[torch.nn.Parameter] = []
        self.partial: dict[str, tuple[torch.nn.Parameter, torch.Tensor]] = {}
        for name, param in params.items():
            if mask is None or (name in mask and bool(mask[name].all())):
                continue
            selected = mask.get(name)
            if selected is None or not bool(selected.any()):
                param.requires_grad_(False)
                self.frozen.append(param)
                continue
            self.partial[name] = (param, mask_chunk(selected, param))  # sharded: its chunk
        self._checksums = {n: checksum(p, s) for n, (p, s) in self.partial.items()}
        self._frozen_sums = [checksum(p, None) for p in self.frozen]

    @torch.no_grad()
    def zero_unselected_grads(self) -> None:
        """g ← 0 where not selected, in place; call before clipping and the optimizer step.

        A fill, not g·s: an inf or NaN entry outside the mask becomes 0 (inf·0 would be NaN
        and poison the clipping norm). One inside the mask stays; the run then stops on its
        non-finite loss, unsaved.
        """
        for param, selected in self.partial.values():
            if param.grad is not None:
                local(param.grad).masked_fill_(~selected, 0.0)

    def make_weight_decay_mask_aware(self, optimizer: torch.optim.Optimizer) -> None:
        """Move partly selected parameters' decay out of ``optimizer`` into a masked pre-step."""
        selected = {id(p): s for p, s in self.partial.values()}
        moved: list[tuple[torch.nn.Parameter, torch.Tensor, float]] = []
        for group in optimizer.param_groups:
            decay = group.get("weight_decay", 0.0)
            if not decay:
                continue
            keep = [p for p in group["params"] if id(p) not in selected]
            moved += [(p, selected[id(p)], decay) for p in group["params"] if id(p) in selected]
            group["params"] = keep
        if moved:
            optimizer.add_param_group(
                {"params": [p for p, _, _ in moved], "weight_decay": 0.0, "masked_decay": True}
            )
            optimizer.register_step_pre_hook(_masked_decay(moved))

    def verify(self) -> None:
        """Raise unless every unselected weight is bit-for-bit what it was at construction."""
        moved = [n for n, (p, s) in self.partial.items() if checksum(p, s) != self._checksums[n]]
        moved += [
            "a frozen parameter"
            for p, before in zip(self.frozen, self._frozen_sums, strict=True)
            if checksum(p, None) != before
        ]
        if moved:
            raise WagleError(
                f"masked weights changed in {len(moved)} parameter(s) (e.g. {moved[0]}); "
                f"use one of the optimizers {', '.join(EXACT_OPTIMIZERS)}; nothing was saved"
            )

    def remove(self) -> None:
        """Unfreeze what was frozen."""
        for param in self.frozen:
            param.requires_grad_(True)
        self.frozen = []


def _masked_decay(moved: list[tuple[torch.nn.Parameter, torch.Tensor, float]]):
    """A step pre-hook applying AdamW's decoupled decay p ← p·(1 − lr·wd) to selected entries."""

    @torch.no_grad()
    def hook(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        group = next(g for g in optimizer.param_groups if g.get("masked_decay"))
        lr = float(group["lr"])
        for param, selected, decay in moved:
            # f = 1 − lr·wd·s in fp32: 1 − 0 = 1.0 exactly where s = 0, and p·1.0 = p.
            local(param).mul_(selected.to(torch.float32).mul_(-lr * decay).add_(1.0))

    return hook
