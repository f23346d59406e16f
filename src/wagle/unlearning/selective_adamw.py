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
    p[index] ← w                  ``index_put_``: entries outside s are never written

(Gathers and scatters go through the stored indices: ``masked_select`` and
``masked_scatter_`` scan the whole bool mask and were 5-15× slower on CPU.)

which is torch.optim.AdamW's update, term for term, restricted to s: in fp32 the weights
equal those of dense-state masked AdamW to floating-point tolerance (tested). A fully selected
parameter (no entry in ``selected``) is the same on the whole tensor.

Clipping: the Trainer clips ``p.grad`` before ``step``; the unselected entries of the gradient
are already exactly 0 then (``MaskEnforcer.zero_unselected_grads``), so the clipped norm is
the norm over the selected entries only — the same norm as dense-state masked AdamW.
Under DDP each process holds the same state and applies the same update to the same
all-reduced gradient, so every rank ends with identical weights. Under FSDP2 each process
keeps the state of the selected entries of its own chunks and updates those.
"""

from __future__ import annotations

import math

import torch

from wagle.attribution.masks import Mask
from wagle.errors import WagleError
from wagle.sharding import local
from wagle.unlearning.config import AUTO_MAX_DENSITY, OPTIMIZER_STATES

SELECTIVE_OPTIMIZERS = ("adamw_torch", "adamw_torch_fused")


class SelectiveAdamW(torch.optim.Optimizer):
    """``SelectiveAdamW(param_groups, selected={id(p): bool mask}, lr, betas, eps, weight_decay)``.

    ``selected`` maps a parameter's id to its bool mask (on the parameter's device); a
    parameter not in it is fully selected.
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

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, decay, eps = float(group["lr"]), group["weight_decay"], group["eps"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                s = self.selected.get(id(param))
                state = self.state[param]
                p = local(param)  # sharded (FSDP2): this process's chunk, its mask a chunk too
                if not state:
                    self._init_state(p, s, state)
                state["step"] += 1
                t = state["step"]
                index = state.get("index")
                g = _gather(local(param.grad), index).float()
                w = state["master"] if "master" in state else _gather(p, index).float()
                if decay:
                    w.mul_(1 - lr * decay)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
                w.addcdiv_(m, denom, value=-lr / (1 - beta1**t))
                _scatter(p, index, w)
        return loss

    @staticmethod
    def _init_state(p: torch.Tensor, s: torch.Tensor | None, state: dict) -> None:
        state["step"] = 0
        if s is not None:
            dtype = torch.int32 if p.numel() < 2**31 else torch.int64
            state["index"] = s.reshape(-1).nonzero().reshape(-1).to(dtype)
        k = p.numel() if s is None else state["index"].numel()
        state["exp_avg"] = torch.zeros(k, dtype=torch.float32, device=p.device)
        state["exp_avg_sq"] = torch.zeros(k, dtype=torch.float32, device=p.device)
        if p.dtype != torch.float32:
            state["master"] = _gather(p, state.get("index")).float()

    def load_state_dict(self, state_dict: dict) -> None:
        """As torch's, but the state keeps its own dtypes: torch casts floating state to the
        parameter's dtype, which would round the fp32 moments and masters of bf16 weights."""
        saved = state_dict["state"]
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        for index, values in saved.items():
            param = params[index]
            self.state[param] = {
                k: v.to(param.device) if isinstance(v, torch.Tensor) else v
                for k, v in values.items()
            }

    def state_bytes(self) -> int:
        """Bytes of every state tensor (indices, moments, masters) this optimizer holds."""
        return sum(
            t.numel() * t.element_size()
            for state in self.state.values()
            for t in state.values()
            if isinstance(t, torch.Tensor)
        )


def _gather(t: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """The entries of ``t`` at flat ``index`` as a 1-D tensor [k] (a copy; all if None)."""
    flat = t.detach().reshape(-1)
    return flat.clone() if index is None else flat.index_select(0, index)


def _scatter(p: torch.Tensor, index: torch.Tensor | None, w: torch.Tensor) -> None:
    """p[index] ← w in p's dtype; nothing else is written."""
    if index is None:
        p.copy_(w.view_as(p))
    else:
        p.view(-1).index_put_((index,), w.to(p.dtype))


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
