"""Sequence log-likelihoods: the one computation every score, loss and metric builds on."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from wagle.data.prompt import IGNORE_INDEX


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token NLL [B, T-1] in fp32 for next-token prediction; 0 where the label is -100."""
    shifted_logits = logits[:, :-1].float()
    shifted_labels = labels[:, 1:]
    nll = F.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.size(-1)),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return nll.view(shifted_labels.shape)


def sequence_nll(
    model: torch.nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL over labelled tokens [B], number of labelled tokens [B]) for each sequence.

    Mean NLL per sequence is ``nll_sum / n_tokens``; the NPO losses use the sum.
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    nll = token_nll(logits, batch["labels"])
    return nll.sum(dim=1), labelled(batch["labels"]).sum(dim=1)


def mean_nll_of_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-mean NLL of a batch from logits already computed [B, T, V] (a scalar)."""
    return token_mean(token_nll(logits, labels), labelled(labels).sum())


def labelled(labels: torch.Tensor) -> torch.Tensor:
    """[B, T-1] bool: the positions whose next-token label counts (not IGNORE_INDEX)."""
    return labels[:, 1:] != IGNORE_INDEX


def per_sequence_mean(nll_sum: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
    """Mean NLL of each sequence [B] (0 for a sequence without labelled tokens)."""
    return nll_sum / n_tokens.clamp(min=1)


def token_mean(nll_sum: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
    """Token-mean NLL of a batch: Σ NLL / Σ tokens (a scalar), like HF's causal-LM loss."""
    return nll_sum.sum() / n_tokens.sum().clamp(min=1)


def labelled_token_nll(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], **forward: object
) -> tuple[torch.Tensor, torch.Tensor]:
    """(NLL [n] fp32 of every labelled token, row by row; labelled tokens per row [B]), from
    ``labelled_logits``."""
    logits, targets, counts = labelled_logits(model, batch, **forward)
    return F.cross_entropy(logits.float(), targets, reduction="none"), counts


def labelled_logits(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], **forward: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits [n, V] of the positions that predict the n labelled tokens, row by row; those
    tokens [n]; labelled tokens per row [B]).

    Logits are computed at the n predicting positions only: the model's forward slices its
    hidden states with ``logits_to_keep`` (a [B, T] bool mask) before the LM head, so no
    [B, T, V] tensor exists (a model that ignores the mask has its full logits sliced here).
    ``forward`` goes to the model as is (``past_key_values`` of a shared prompt, which then
    covers the positions before ``batch``'s: ``attention_mask`` spans both).
    """
    keep = F.pad(labelled(batch["labels"]), (0, 1))  # [B, T]: position t predicts token t+1
    targets = batch["labels"][:, 1:][keep[:, :-1]]  # [n]
    if slices_by_mask(model):
        forward = forward | {"logits_to_keep": keep}
    logits = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **forward
    ).logits
    return (logits if logits.dim() == 2 else logits[keep]), targets, keep.sum(dim=1)


def slices_by_mask(model: torch.nn.Module) -> bool:
    """Whether ``model``'s forward takes a bool ``logits_to_keep`` mask (transformers' models
    since ``slice_logits_to_keep``; remote code may not)."""
    from transformers import modeling_utils

    has_argument = "logits_to_keep" in inspect.signature(model.forward).parameters
    return has_argument and hasattr(modeling_utils, "slice_logits_to_keep")
