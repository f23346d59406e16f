"""LoRA (peft) as a baseline, and LoRA under a mask.

Without a mask, peft adapters go on the linear modules named in ``targets`` and are merged
into a plain model on save.

With a mask, the mask acts during training, not only when merging: each targeted linear
module whose weight has a selected entry gets a ``torch.nn.utils.parametrize``
parametrization (not a wrapper module) that makes its effective weight

    W' = where(M, W + (α/r)·B·A, W)        W, M: [out, in]; B: [out, r]; A: [r, in]

so the forward pass, the loss and the gradients of A and B all see the masked update. On
save the parametrization is removed with ``leave_parametrized=True``: the stored weight is
exactly the W' the model was trained with, and an unselected entry is W itself, bit for bit.
A and B are initialised as peft initialises them (A Kaiming-uniform, B zero: W' = W at step 0).

Precision: ΔW = (α/r)·B·A is computed in fp32 with autocast off, in training and when
merging alike, so the merged weight is the trained one also under ``bf16: true`` (autocast
would otherwise compute it in bf16 during training and in fp32 at the merge).

Cost: a masked LoRA is not a memory saving. Every forward pass builds the dense ΔW [out, in]
(fp32) and W' [out, in] of each targeted layer, and autograd keeps them for the backward
pass: about 8 bytes (fp32 weights) per targeted weight on top of the model, against a full
fine-tune's gradients of 4. Without a mask, peft's adapters never build ΔW.
"""

from __future__ import annotations

import math

import torch
from torch.nn.utils import parametrize

from wagle.attribution.masks import Mask
from wagle.errors import WagleError


class MaskedLowRankUpdate(torch.nn.Module):
    """The parametrization W ↦ where(M, W + (α/r)·B·A, W) of one linear weight."""

    def __init__(self, weight: torch.Tensor, selected: torch.Tensor, rank: int, alpha: float):
        super().__init__()
        out_features, in_features = weight.shape
        self.lora_A = torch.nn.Parameter(torch.empty(rank, in_features, dtype=torch.float32))
        self.lora_B = torch.nn.Parameter(torch.zeros(out_features, rank, dtype=torch.float32))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = alpha / rank
        self.register_buffer("selected", selected.to(weight.device), persistent=False)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        with torch.autocast(weight.device.type, enabled=False):  # fp32 in training and merge
            delta = (self.lora_B.float() @ self.lora_A.float()) * self.scaling  # [out, in]
        return torch.where(self.selected, weight + delta.to(weight.dtype), weight)


def target_modules(model: torch.nn.Module, targets: list[str], mask: Mask | None) -> list[str]:
    """Names of the linear modules named in ``targets`` (with a selected weight, given a mask)."""
    modules = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in targets:
            selected = mask.get(f"{name}.weight") if mask is not None else None
            if mask is None or (selected is not None and bool(selected.any())):
                modules.append(name)
    if not modules:
        raise WagleError(f"no linear module named {targets} (with selected weights) for LoRA")
    return modules


def add_lora(
    model: torch.nn.Module,
    targets: list[str],
    rank: int,
    alpha: float,
    mask: Mask | None = None,
) -> torch.nn.Module:
    """LoRA on the targeted linear modules: peft adapters, or masked updates under ``mask``.

    Only the low-rank factors are trainable afterwards. Seed before calling: A is random.
    """
    modules = target_modules(model, targets, mask)
    if mask is None:
        from peft import LoraConfig, get_peft_model  # imported on use: peft is slow to import

        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=modules)
        return get_peft_model(model, config)
    model.requires_grad_(False)
    for name in modules:
        module = model.get_submodule(name)
        update = MaskedLowRankUpdate(module.weight, mask[f"{name}.weight"], rank, alpha)
        parametrize.register_parametrization(module, "weight", update)
    return model


@torch.no_grad()
def merge_lora(model: torch.nn.Module, mask: Mask | None = None) -> torch.nn.Module:
    """A plain model: peft adapters merged and removed, or each masked update baked into its
    weight (W' = where(M, W + ΔW, W), exactly what training used); every weight trainable."""
    if mask is None:
        merged = model.merge_and_unload()
    else:
        for module in list(model.modules()):
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        merged = model
    merged.requires_grad_(True)
    return merged
