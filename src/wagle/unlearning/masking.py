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

On CPU, dense-state AdamW's unselected second moments are set to 1.0 after the first step
and every ``REFILL`` steps after (``keep_second_moments_normal``). Their first moments stay
exactly 0 (the gradient there is always exactly 0), so the update there is 0/(√v̂+ε) = 0
whatever v is: the weights are the same to the bit. Why: torch's CPU ``sqrt`` (MKL) takes a
slow path for 0 (and inf), ~10× the time of a normal float, and a random mask leaves a zero in
almost every vector; AdamW takes the square root of every second moment at every step.

Per optimizer step nothing of a parameter's size is allocated: the gradient is zeroed in place
(``zero_unselected``), and f is built ``CHUNK`` entries at a time in an fp32 scratch buffer
made once per device and reused by every parameter and step (multiplying by the bool mask
itself would convert it to a float copy of the parameter's size first), from the bit patterns
of its two values (``decay_selected``).

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
from wagle.unlearning.fsdp import INT_VIEW, checksum, mask_chunk

CHUNK = 1 << 24  # entries per decay pass: the scratch buffer is ≤ 64 MB (fp32)
# steps between fills of the unselected second moments: with no gradient there v ← β2·v, and
# 1.0·β2^REFILL must stay a normal float (denormals are slower still): β2 ≥ 0.92 (wagle: 0.999)
REFILL = 1000


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
        self._scratch: dict[tuple, torch.Tensor] = {}  # zeroing's buffers, made once

    @torch.no_grad()
    def zero_unselected_grads(self) -> None:
        """g ← 0 where not selected, in place; call before clipping and the optimizer step.

        A fill, not g·s: an inf or NaN entry outside the mask becomes 0 (inf·0 would be NaN
        and poison the clipping norm). One inside the mask stays; the run then stops on its
        non-finite loss, unsaved.
        """
        for param, selected in self.partial.values():
            if param.grad is not None:
                zero_unselected(local(param.grad), selected, self._scratch)

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

    def keep_second_moments_normal(self, optimizer: torch.optim.Optimizer) -> None:
        """After ``optimizer``'s first step and every ``REFILL`` steps, set the second moments
        of unselected entries to 1.0 (CPU only: see above; the weights do not change)."""
        partial = [(p, s) for p, s in self.partial.values() if local(p).device.type == "cpu"]
        if partial:
            optimizer.register_step_post_hook(_fill_second_moments(partial))

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


@torch.no_grad()
def zero_unselected(grad: torch.Tensor, selected: torch.Tensor, scratch: dict) -> None:
    """g ← +0.0 where s is False, in place, nothing else written.

    On an accelerator one ``torch.where``. On CPU, where ``where`` with a bool condition runs
    ~4× slower than plain arithmetic, g's bits are ANDed with s widened to all-ones / all-zeros
    words (s → 0/1 → 0/−1 in an integer scratch of g's width, ``CHUNK`` entries at a time):
    the same result, bit for bit. ``scratch`` keeps the buffers between calls.
    """
    key = (grad.dtype, grad.device)
    if grad.device.type != "cpu":
        if key not in scratch:
            scratch[key] = torch.zeros((), dtype=grad.dtype, device=grad.device)
        torch.where(selected, grad, scratch[key], out=grad)
        return
    bits, keep = grad.view(-1).view(INT_VIEW[grad.element_size()]), selected.view(-1)
    if key not in scratch or scratch[key].numel() < min(CHUNK, bits.numel()):
        scratch[key] = torch.empty(min(CHUNK, bits.numel()), dtype=bits.dtype)
    step = scratch[key].numel()
    for start in range(0, bits.numel(), step):
        part = bits[start : start + step]
        words = scratch[key][: part.numel()].copy_(keep[start : start + step]).neg_()
        part.bitwise_and_(words)


def _fill_second_moments(partial: list[tuple[torch.nn.Parameter, torch.Tensor]]):
    """A step post-hook: v ← 1.0 where not selected, after steps 1, 1 + REFILL, ... (counted
    from this process's first step: a resumed run fills again, which changes no weight)."""
    steps = 0

    @torch.no_grad()
    def hook(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        nonlocal steps
        if steps % REFILL == 0:
            for param, selected in partial:
                if "exp_avg_sq" in optimizer.state.get(param, {}):
                    local(optimizer.state[param]["exp_avg_sq"]).masked_fill_(~selected, 1.0)
        steps += 1

    return hook


def _masked_decay(moved: list[tuple[torch.nn.Parameter, torch.Tensor, float]]):
    """A step pre-hook applying AdamW's decoupled decay p ← p·(1 − lr·wd) to selected entries."""
    scratch: dict[torch.device, torch.Tensor] = {}  # fp32 [2, ≤ CHUNK] per device, made once
    size = min(CHUNK, max(local(p).numel() for p, _, _ in moved))

    @torch.no_grad()
    def hook(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        group = next(g for g in optimizer.param_groups if g.get("masked_decay"))
        lr = float(group["lr"])
        bits: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # (device, rate) → its f
        for param, selected, decay in moved:
            chunk = local(param)  # sharded: this process's chunk, as ``selected``
            if chunk.device not in scratch:
                scratch[chunk.device] = torch.empty(2, size, device=chunk.device)
            key = (chunk.device, lr * decay)
            if key not in bits:
                bits[key] = factor_bits(lr * decay, chunk.device)
            decay_selected(chunk, selected, bits[key], scratch[chunk.device])

    return hook


def factor_bits(rate: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The decay factor's two values as fp32 bit patterns (int32 [], on ``device``, nothing
    read back): 1.0, and (1 − rate) − 1.0, with 1 − rate computed as 1·(−rate) + 1 in fp32."""
    one = torch.ones((), device=device)
    decayed = one.mul(-rate).add_(1.0)
    return one.view(torch.int32), decayed.view(torch.int32) - one.view(torch.int32)


@torch.no_grad()
def decay_selected(
    param: torch.Tensor,
    selected: torch.Tensor,
    bits: tuple[torch.Tensor, torch.Tensor],
    scratch: torch.Tensor,
) -> None:
    """p ← p·f, f = 1 − rate where s and exactly 1.0 elsewhere (``bits = factor_bits(rate)``),
    in place, through ``scratch`` (fp32 [2, C]: f, and p's chunk in fp32 when p is not fp32),
    C entries at a time.

    f is built from its bit patterns, bits(1.0) + s·(bits(1 − rate) − bits(1.0)) in int32
    (exact: the same f as s → 1.0/0.0, ·(−rate), +1 in fp32), because on CPU widening a bool
    to int32 takes a third of the time of widening it to fp32.
    """
    flat, keep = param.view(-1), selected.view(-1)
    one, step_down = bits
    size = scratch.shape[1]
    for start in range(0, flat.numel(), size):
        part = flat[start : start + size]
        factor = scratch[0, : part.numel()].view(torch.int32).copy_(keep[start : start + size])
        factor = factor.mul_(step_down).add_(one).view(torch.float32)
        if part.dtype == torch.float32:
            part.mul_(factor)
        else:  # the product in fp32, rounded once (a bf16 f would round 1 − lr·wd to 1)
            part.copy_(scratch[1, : part.numel()].copy_(part).mul_(factor))
