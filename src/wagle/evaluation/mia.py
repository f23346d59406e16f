"""Membership inference: can a score tell forget samples (members) from holdout ones?

Each attack maps the NLLs of a sample's labelled tokens (answer tokens of QA records, all
tokens of raw text) to a score that is higher for likelier members:

- ``loss``: −mean NLL (the plain loss attack).
- ``min_k``: Min-K% probability (Shi et al., 2024): the mean log-probability of the
  ``max(1, int(k·n))`` least likely of the n tokens of the *text*: the EOS that the QA prompt
  format appends to an answer is a template artefact and is left out, as in the TOFU and
  MUSE reference code (raw text has no appended EOS, so all its tokens count).

AUC 0.5 = the model treats forget and holdout alike (what a retain model should show); the
PrivLeak relative to a retain model's AUC is ``stats.privleak``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.data.batching import encode_records
from wagle.data.load import Record
from wagle.evaluation import stats
from wagle.evaluation.likelihood import token_nlls
from wagle.registry import register


@dataclass(frozen=True)
class Attack:
    score: Callable[[torch.Tensor, float], float]  # (token NLLs [n], k) → membership score
    text_only: bool  # score the text's tokens only: a QA answer's appended EOS is left out


MIA_ATTACKS: dict[str, Attack] = {}


def attack(name: str, text_only: bool = False) -> Callable:
    """Decorator: register ``score(nll, k)`` as membership attack ``name``."""

    def add(score: Callable[[torch.Tensor, float], float]) -> Callable:
        register(MIA_ATTACKS, name)(Attack(score, text_only))
        return score

    return add


@attack("loss")
def loss_score(nll: torch.Tensor, k: float) -> float:
    """−mean NLL of the tokens [n] (``k`` unused)."""
    return -nll.mean().item()


@attack("min_k", text_only=True)
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
    nlls, text_nlls = {}, {}
    for group, data in (("members", members), ("nonmembers", nonmembers)):
        examples = encode_records(tokenizer, data)
        nlls[group] = token_nlls(model, examples, tokenizer.pad_token_id, batch_size)
        appended = [
            isinstance(record, dict) and example["input_ids"][-1] == tokenizer.eos_token_id
            for record, example in zip(data, examples, strict=True)
        ]
        text_nlls[group] = [
            without_last(n) if eos else n for n, eos in zip(nlls[group], appended, strict=True)
        ]
    out: dict[str, Any] = {"k": k}
    for name, spec in MIA_ATTACKS.items():
        source = text_nlls if spec.text_only else nlls
        scores = {group: [spec.score(n, k) for n in values] for group, values in source.items()}
        out[name] = {"auc": stats.auc(scores["members"], scores["nonmembers"])} | scores
    return out


def without_last(nll: torch.Tensor) -> torch.Tensor:
    """The token NLLs [n] without the last one (an appended EOS); kept whole when n = 1."""
    return nll[:-1] if nll.numel() > 1 else nll
