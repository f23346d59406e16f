"""Membership inference: can a score tell forget samples (members) from holdout ones?

Each attack maps the NLLs of a sample's labelled tokens (answer tokens of QA records, all
tokens of raw text) to a score that is higher for likelier members:

- ``loss``: −mean NLL (the plain loss attack).
- ``min_k``: Min-K% probability (Shi et al., 2024): the mean log-probability of the
  ``max(1, int(k·n))`` least likely of the n tokens.

AUC 0.5 = the model treats forget and holdout alike (what a retain model should show); the
privacy leakage relative to a retain model's AUC is ``stats.privacy_leakage``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.data.batching import encode_records
from wagle.data.load import Record
from wagle.evaluation import stats
from wagle.evaluation.likelihood import token_nlls
from wagle.registry import register

Attack = Callable[[torch.Tensor, float], float]
MIA_ATTACKS: dict[str, Attack] = {}


@register(MIA_ATTACKS, "loss")
def loss_score(nll: torch.Tensor, k: float) -> float:
    """−mean NLL of the tokens [n] (``k`` unused)."""
    return -nll.mean().item()


@register(MIA_ATTACKS, "min_k")
def min_k_score(nll: torch.Tensor, k: float) -> float:
    """Mean log-probability of the ``max(1, int(k·n))`` tokens with the highest NLL [n]."""
    count = max(1, int(k * nll.numel()))
    return -torch.topk(nll, count).values.mean().item()


def membership_inference(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    members: list[Record] | list[str],
    nonmembers: list[Record] | list[str],
    *,
    k: float = 0.4,
    batch_size: int = 32,
) -> dict[str, Any]:
    """AUC of every attack, with the per-sample scores of members and non-members."""
    nlls = {
        name: token_nlls(model, encode_records(tokenizer, data), tokenizer.pad_token_id, batch_size)
        for name, data in (("members", members), ("nonmembers", nonmembers))
    }
    out: dict[str, Any] = {"k": k}
    for name, attack in MIA_ATTACKS.items():
        scores = {group: [attack(n, k) for n in values] for group, values in nlls.items()}
        out[name] = {"auc": stats.auc(scores["members"], scores["nonmembers"])} | scores
    return out
