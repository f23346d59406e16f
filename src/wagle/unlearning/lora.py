"""LoRA (peft) as a baseline, and combined with a mask.

Adapters go on the linear modules named in ``targets``; with a mask, only on those whose
weight has at least one selected entry. On save, the adapters are merged into a plain model:
W ← W + ΔW where the mask selects and W unchanged elsewhere, so the mask invariant holds
exactly for LoRA too. (During training the low-rank update is not masked inside a module;
the mask is applied when merging.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from wagle.attribution.masks import Mask
from wagle.errors import WagleError

if TYPE_CHECKING:
    from peft import PeftModel

ADAPTER = "default"


def add_lora(
    model: torch.nn.Module,
    targets: list[str],
    rank: int,
    alpha: float,
    mask: Mask | None = None,
) -> PeftModel:
    """Wrap ``model`` with LoRA adapters on the targeted linear modules (mask-selected ones)."""
    from peft import LoraConfig, get_peft_model  # imported on use: peft is slow to import

    modules = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in targets:
            selected = mask.get(f"{name}.weight") if mask is not None else None
            if mask is None or (selected is not None and bool(selected.any())):
                modules.append(name)
    if not modules:
        raise WagleError(f"no linear module named {targets} (with selected weights) for LoRA")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=modules)
    return get_peft_model(model, config)


@torch.no_grad()
def merge_lora(model: PeftModel, mask: Mask | None = None) -> torch.nn.Module:
    """The base model with the adapters merged (only where ``mask`` selects) and removed."""
    from peft.tuners.lora import Linear as LoraLinear

    base_names = {
        id(p): n.replace(".base_layer", "") for n, p in model.get_base_model().named_parameters()
    }
    for module in model.modules():
        if not isinstance(module, LoraLinear):
            continue
        weight = module.get_base_layer().weight
        delta = module.get_delta_weight(ADAPTER).to(weight.dtype)
        if mask is None:
            weight.add_(delta)
        else:
            selected = mask[base_names[id(weight)]].to(weight.device)
            weight.copy_(torch.where(selected, weight + delta, weight))
    return model.unload()
