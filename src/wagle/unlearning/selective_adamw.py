"""AdamW whose state exists only for the selected weights: ``--optimizer-state selected``.

Dense-state masked AdamW (``full``) keeps two fp32 moments for every entry of every partly
selected tensor. Here a parameter p with bool mask s (k of its n entries selected) has

    index                 int32 [k], the flat positions of the selected entries
    exp_avg, exp_avg_sq   fp32 [k]
    master                fp32 [k], only when p is not fp32 (an fp32 p is its own master)

(12 bytes per selected fp32 weight, 16 per bf16 one, against dense state's 8 or 4 per weight
of the whole tensor) and each step, on the step's complete gradient (accumulated,
all-reduced, clipped):

    g ← grad[index] (fp32)        w ← master, or p[index] when p is fp32
    w ← w·(1 − lr·wd)             decoupled decay of the selected entries alone
    m ← β1·m + (1 − β1)·g         v ← β2·v + (1 − β2)·g²
    w ← w − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
    p[index] ← w                  entries outside s are never written

which is torch.optim.AdamW's update, term for term, restricted to s: in fp32 the weights
equal those of dense-state masked AdamW to floating-point tolerance (tested). A fully selected
parameter (no entry in ``selected``) is the same on the whole tensor.

**Flat buckets.** The parameters of a group that share a dtype and device are laid end to end
in *buckets* of up to ``BUCKET`` selected entries: a bucket's moments (and masters) are one
flat fp32 buffer each, and each parameter's state tensors are views into them (so
``state_dict`` and ``state_bytes`` see per-parameter state as before). A step costs, per
parameter, one gather of its gradient (``index_select`` into the bucket's gradient buffer),
one gather of fp32 weights and one scatter (``index_copy_``); and per bucket, the eight
elementwise kernels of the update above over the flat buffers, whatever the number of
parameters. The step count is a host integer and the bias corrections host floats: nothing
is read back from the device. The gradient and weight buffers (8 bytes per entry of one
bucket) live only during the step. (Gathers and scatters go through the stored indices:
``masked_select`` and ``masked_scatter_`` scan the whole bool mask and were 5-15× slower on
CPU; ``index_copy_`` wants int64 indices, copied into one int64 scratch per bucket.)

Clipping: the Trainer clips ``p.grad`` before ``step``; the unselected entries of the gradient
are already exactly 0 then (``MaskEnforcer.zero_unselected_grads``), so the clipped norm is
the norm over the selected entries only — the same norm as dense-state masked AdamW.
Under DDP each process holds the same state and applies the same update to the same
all-reduced gradient, so every rank ends with identical weights. Under FSDP2 each process
keeps the state of the selected entries of its own chunks and updates those (every tensor
below is the local chunk, ``wagle.sharding.local``; the masks are chunks too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from wagle.attribution.masks import Mask
from wagle.errors import WagleError
from wagle.sharding import local
from wagle.unlearning.config import AUTO_MAX_DENSITY, OPTIMIZER_STATES

SELECTIVE_OPTIMIZERS = ("adamw_torch", "adamw_torch_fused")
BUCKET = 1 << 25  # selected entries per flat bucket: its step buffers are ≤ 256 MB


class SelectiveAdamW(torch.optim.Optimizer):
    """``SelectiveAdamW(param_groups, selected={id(p): bool mask}, lr, betas, eps, weight_decay)``.

    ``selected`` maps a parameter's id to its bool mask (on the parameter's device); a
    parameter not in it is fully selected. Every parameter that has a gradient at the first
    step must have one at every step (the Trainer's parameters do): a bucket steps together.
    """

    def __init__(
        self,
        params,
        selected: dict[int, torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)
        self.selected = selected
        self._buckets: list[tuple[dict, _Bucket]] | None = None  # built at the first step

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._buckets is None:
            self._buckets = [(g, b) for g in self.param_groups for b in self._build(g)]
        for group, bucket in self._buckets:
            bucket.step(group)
            for p in bucket.params:
                self.state[p]["step"] = bucket.t
        return loss

    def _build(self, group: dict) -> list[_Bucket]:
        """The group's parameters with a gradient, bucketed by (dtype, device) in order."""
        full: list[_Bucket] = []
        open_: dict[tuple, tuple[list[torch.Tensor], int]] = {}  # members, their entries
        for p in group["params"]:
            if p.grad is None:
                continue
            if not self.state[p]:
                _init_state(local(p), self.selected.get(id(p)), self.state[p])
            key, size = (p.dtype, local(p).device), _size(self.state[p])
            members, total = open_.get(key, ([], 0))
            if members and total + size > BUCKET:
                full.append(_Bucket(members, self.state))
                members, total = [], 0
            open_[key] = ([*members, p], total + size)
        return full + [_Bucket(members, self.state) for members, _ in open_.values()]

    def load_state_dict(self, state_dict: dict) -> None:
        """As torch's, but the state keeps its own dtypes: torch casts floating state to the
        parameter's dtype, which would round the fp32 moments and masters of bf16 weights.
        The buckets are rebuilt from it at the next step."""
        saved = state_dict["state"]
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        for index, values in saved.items():
            param = params[index]
            self.state[param] = {
                k: v.to(param.device) if isinstance(v, torch.Tensor) else v
                for k, v in values.items()
            }
        self._buckets = None

    def state_bytes(self) -> int:
        """Bytes of every state tensor (indices, moments, masters) this optimizer holds."""
        return sum(
            t.numel() * t.element_size()
            for state in self.state.values()
            for t in state.values()
            if isinstance(t, torch.Tensor)
        )


def _init_state(p: torch.Tensor, s: torch.Tensor | None, state: dict) -> None:
    state["step"] = 0
    if s is not None:
        dtype = torch.int32 if p.numel() < 2**31 else torch.int64
        state["index"] = s.reshape(-1).nonzero().reshape(-1).to(dtype)
    k = p.numel() if s is None else state["index"].numel()
    state["exp_avg"] = torch.zeros(k, dtype=torch.float32, device=p.device)
    state["exp_avg_sq"] = torch.zeros(k, dtype=torch.float32, device=p.device)
    if p.dtype != torch.float32:
        index = state.get("index")
        flat = p.detach().reshape(-1)
        state["master"] = (flat if index is None else flat.index_select(0, index)).float()


def _size(state: dict) -> int:
    return state["exp_avg"].numel()


@dataclass
class _Segment:
    param: torch.Tensor
    start: int
    end: int
    index: torch.Tensor | None  # flat positions in param; None: all of it


class _Bucket:
    """Parameters of one dtype and device whose state lives in flat fp32 buffers [K]."""

    def __init__(self, params: list[torch.Tensor], states: dict) -> None:
        self.params = params
        self.segments: list[_Segment] = []
        start = 0
        for p in params:
            k = _size(states[p])
            self.segments.append(_Segment(p, start, start + k, states[p].get("index")))
            start += k
        self.size, first = start, params[0]
        self.dtype, self.device = first.dtype, local(first).device
        steps = {states[p]["step"] for p in params}
        if len(steps) != 1:
            raise WagleError(f"SelectiveAdamW: parameters of one bucket at steps {sorted(steps)}")
        self.t = steps.pop()
        keys = ["exp_avg", "exp_avg_sq"] + (["master"] if self.dtype != torch.float32 else [])
        self.flat = {key: self._flatten(states, key) for key in keys}
        longest = max((s.index.numel() for s in self.segments if s.index is not None), default=0)
        self.long_index = torch.empty(longest, dtype=torch.int64, device=self.device)

    def _flatten(self, states: dict, key: str) -> torch.Tensor:
        """One fp32 buffer [K] holding every parameter's ``key``; the states become views."""
        flat = torch.cat([states[s.param][key] for s in self.segments])
        for s in self.segments:
            states[s.param][key] = flat[s.start : s.end]
        return flat

    def step(self, group: dict) -> None:
        beta1, beta2 = group["betas"]
        lr, decay, eps = float(group["lr"]), group["weight_decay"], group["eps"]
        self.t += 1
        g = self._gather_grads()
        w = self.flat.get("master")
        if w is None:  # fp32 weights are their own masters
            w = torch.empty(self.size, dtype=torch.float32, device=self.device)
            for s in self.segments:
                _gather(local(s.param).detach(), s.index, w[s.start : s.end])
        if decay:
            w.mul_(1 - lr * decay)
        m, v = self.flat["exp_avg"], self.flat["exp_avg_sq"]
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = torch.sqrt(v, out=g).div_(math.sqrt(1 - beta2**self.t)).add_(eps)  # g is spent
        w.addcdiv_(m, denom, value=-lr / (1 - beta1**self.t))
        self._scatter(w if self.dtype == torch.float32 else w.to(self.dtype))

    def _gather_grads(self) -> torch.Tensor:
        """The selected gradient entries of every parameter, end to end, fp32 [K]."""
        raw = torch.empty(self.size, dtype=self.dtype, device=self.device)
        for s in self.segments:
            if s.param.grad is None:
                raise WagleError("SelectiveAdamW: a parameter lost its gradient after step 1")
            _gather(local(s.param.grad), s.index, raw[s.start : s.end])
        return raw if self.dtype == torch.float32 else raw.float()

    def _scatter(self, w: torch.Tensor) -> None:
        """p[index] ← w's segment for every parameter; nothing else is written."""
        for s in self.segments:
            flat, values = local(s.param).detach().view(-1), w[s.start : s.end]
            if s.index is None:
                flat.copy_(values)
            else:
                index = self.long_index[: s.index.numel()]
                flat.index_copy_(0, index.copy_(s.index), values)


def _gather(t: torch.Tensor, index: torch.Tensor | None, out: torch.Tensor) -> None:
    """out ← the entries of ``t`` at flat ``index`` (all, if None), in ``out``'s dtype."""
    flat = t.reshape(-1)
    if index is None:
        out.copy_(flat)
    else:
        torch.index_select(flat, 0, index, out=out)


def use_selective_state(
    mode: str, mask: Mask | None, model: torch.nn.Module, optimizer: str = "adamw_torch"
) -> bool:
    """Whether ``mode`` (auto/full/selected) means selective state for this mask and model.

    ``auto``: selective when the optimizer is AdamW, a mask is given and it selects fewer than
    ``AUTO_MAX_DENSITY`` of the trainable weights (above that, gathering costs more time than
    the state it saves).
    """
    if mode not in OPTIMIZER_STATES:
        raise WagleError(f"optimizer_state must be one of {', '.join(OPTIMIZER_STATES)}")
    if mode == "selected" and optimizer not in SELECTIVE_OPTIMIZERS:
        raise WagleError(
            f"optimizer_state 'selected' needs optimizer {' or '.join(SELECTIVE_OPTIMIZERS)}"
        )
    if mode != "auto":
        return mode == "selected"
    if mask is None or optimizer not in SELECTIVE_OPTIMIZERS:
        return False
    chosen = total = 0
    for name, param in model.named_parameters():
        if param.requires_grad:
            total += param.numel()
            chosen += int(mask[name].sum()) if name in mask else 0
    return chosen < AUTO_MAX_DENSITY * total
