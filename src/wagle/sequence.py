"""Sequence log-likelihoods: the one computation every score, loss and metric builds on."""

from __future__ import annotations

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
