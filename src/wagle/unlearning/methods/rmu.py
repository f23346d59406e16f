"""RMU, representation misdirection (Li et al., 2024, the WMDP paper, arXiv 2403.03218).

At one decoder layer ℓ, push the hidden states of forget tokens toward a fixed random
direction of norm c, and keep those of retain tokens at the original model's:

    loss = mean_t ‖h_θ(forget)_t − c·u‖² / H  +  α · mean_t ‖h_θ(retain)_t − h_0(retain)_t‖² / H

over non-padding tokens t, H the hidden size, u a random unit vector (seeded), h_0 a frozen
copy of the original model. Published defaults (Zephyr-7B): ℓ = 7, c = 6.5, α = 1200; on a
model with fewer layers the default layer is min(7, n_layers // 2).

The loss never reaches the layers above ℓ, the final norm or the output head (their logits are
only logged): ``prepare`` freezes them, so no optimizer touches them and DDP, which requires
every trainable parameter to receive a gradient, runs without ``find_unused_parameters``.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from wagle.errors import WagleError
from wagle.registry import register
from wagle.sequence import mean_nll_of_logits
from wagle.unlearning.batch import ForgetRetainBatch, PairedDataset
from wagle.unlearning.objective import METHODS, Objective, Terms, frozen_copy
from wagle.unlearning.options import RMUOptions


def masked_mse(hidden: torch.Tensor, target: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Mean over non-padding tokens of ‖hidden − target‖² / H; hidden [B, T, H], attention [B, T]
    (masked, not indexed: boolean indexing waits for the device)."""
    keep = attention.bool()
    squared = (hidden.float() - target.float()).pow(2).mean(dim=-1)  # [B, T]
    return torch.where(keep, squared, 0.0).sum() / keep.sum().clamp(min=1)


@register(METHODS, "rmu")
class RMU(Objective):
    Options = RMUOptions
    # both distances are means over non-padding positions
    normalised_by: ClassVar[dict[str, str]] = {
        "forget": "forget_positions",
        "retain": "retain_positions",
    }

    def __init__(self, options: RMUOptions | None = None) -> None:
        super().__init__(options)
        self.reference: torch.nn.Module | None = None
        self.layer = -1
        self.target: torch.Tensor | None = None  # c·u [H]

    def prepare(self, model: torch.nn.Module, data: PairedDataset, pad_token_id: int) -> None:
        n_layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
        layer = self.options.rmu_layer
        self.layer = min(7, n_layers // 2) if layer is None else layer
        if not 0 <= self.layer < n_layers:
            raise WagleError(f"rmu_layer {self.layer} is outside the model's 0..{n_layers - 1}")
        generator = torch.Generator().manual_seed(self.options.rmu_seed)
        u = torch.rand(hidden, generator=generator)
        self.target = (self.options.steering_coeff * u / u.norm()).to(model.device)
        self.reference = frozen_copy(model)
        freeze_above(model, self.layer)

    def hidden(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        """(hidden state after layer ℓ [B, T, H], logits) of one forward pass."""
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=True,
        )
        return out.hidden_states[self.layer + 1], out.logits

    def __call__(self, model: torch.nn.Module, batch: ForgetRetainBatch) -> Terms:
        forget_h, forget_logits = self.hidden(model, batch.forget)
        retain_h, retain_logits = self.hidden(model, batch.retain)
        with torch.no_grad():
            original_h, _ = self.hidden(self.reference, batch.retain)
        forget = masked_mse(forget_h, self.target, batch.forget["attention_mask"])
        retain = self.options.rmu_alpha * masked_mse(
            retain_h, original_h, batch.retain["attention_mask"]
        )
        return {
            "loss": forget + retain,
            "forget": forget,
            "retain": retain,
            "forget_nll": _logged_nll(forget_logits, batch.forget["labels"]),
            "retain_nll": _logged_nll(retain_logits, batch.retain["labels"]),
        }


def freeze_above(model: torch.nn.Module, layer: int) -> list[str]:
    """Freeze every trainable parameter outside the input embeddings and decoder layers
    0..``layer`` (what the hidden state after ``layer`` depends on); returns their names.

    The last layer's hidden state is taken after the final norm, which then stays trainable.
    A model without ``get_decoder().layers`` (not a transformers decoder) is left as it is.
    """
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if layers is None:
        return []
    reached = [model.get_input_embeddings(), *layers[: layer + 1]]
    if layer == len(layers) - 1:
        reached.append(decoder.norm)
    keep = {id(p) for module in reached for p in module.parameters()}
    frozen = []
    for name, param in model.named_parameters():
        if param.requires_grad and id(param) not in keep:
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def _logged_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return mean_nll_of_logits(logits.detach(), labels)
