"""Membership inference: Min-K% and loss scores on known token NLLs, AUC on a tiny model."""

from __future__ import annotations

import pytest
import torch

import wagle.evaluation.mia as mia
from wagle.evaluation.mia import loss_score, membership_inference, min_k_score

NLL = torch.tensor([0.1, 2.0, 0.5, 3.0, 1.0])  # token log-probs −0.1, −2, −0.5, −3, −1


def test_min_k_averages_the_log_probs_of_the_least_likely_tokens():
    """k = 0.4 of 5 tokens → int(2.0) = 2 lowest log-probs −3 and −2: score −2.5."""
    assert min_k_score(NLL, 0.4) == pytest.approx(-2.5)


def test_min_k_uses_at_least_one_token():
    """k = 0.1 of 5 tokens → int(0.5) = 0, raised to 1: the lowest log-prob, −3."""
    assert min_k_score(NLL, 0.1) == pytest.approx(-3.0)


def test_min_k_with_k_one_is_the_loss_score():
    """All tokens: −(0.1 + 2 + 0.5 + 3 + 1) / 5 = −1.32, the negative mean NLL."""
    assert min_k_score(NLL, 1.0) == pytest.approx(-1.32)
    assert loss_score(NLL, 0.4) == pytest.approx(-1.32)


def _fixed_nlls(monkeypatch, members, nonmembers):
    """Token NLLs given by the test instead of a model, per group, in record order."""
    given = iter([members, nonmembers])
    monkeypatch.setattr(mia, "token_nlls", lambda *args: next(given))


def test_min_k_of_a_qa_answer_leaves_out_the_appended_eos(tokenizer, micro_splits, monkeypatch):
    """Member answer tokens NLL [0.1, 0.2] + EOS 3.0; non-member [0.5, 0.6] + EOS 0.1.
    Min-K (k = 0.4) over the text tokens: count max(1, int(0.8)) = 1 → member −0.2,
    non-member −0.6 → AUC 1. (With the EOS the member would score −3.0 and AUC be 0.)
    The loss attack keeps every labelled token: −3.3/3 = −1.1 vs −1.2/3 = −0.4 → AUC 0."""
    members, nonmembers = micro_splits["forget10"][:1], micro_splits["holdout"][:1]
    _fixed_nlls(monkeypatch, [torch.tensor([0.1, 0.2, 3.0])], [torch.tensor([0.5, 0.6, 0.1])])
    result = membership_inference(None, tokenizer, members, nonmembers, k=0.4)
    assert result["min_k"]["members"] == [pytest.approx(-0.2)]
    assert result["min_k"]["nonmembers"] == [pytest.approx(-0.6)]
    assert result["min_k"]["auc"] == 1.0
    assert result["loss"]["members"] == [pytest.approx(-1.1)]
    assert result["loss"]["auc"] == 0.0


def test_min_k_of_raw_text_keeps_every_token(tokenizer, monkeypatch):
    """Raw text has no appended EOS: the least likely token (NLL 3.0) is the Min-K score."""
    _fixed_nlls(monkeypatch, [torch.tensor([0.1, 0.2, 3.0])], [torch.tensor([0.5, 0.6, 0.1])])
    result = membership_inference(None, tokenizer, ["a text"], ["another"], k=0.4)
    assert result["min_k"]["members"] == [pytest.approx(-3.0)]
    assert result["min_k"]["auc"] == 0.0


def test_membership_inference_detects_the_same_samples_at_chance(
    tokenizer, tiny_model, micro_splits
):
    """Identical member and non-member sets score identically: every pair ties, AUC = 0.5."""
    records = micro_splits["forget10"][:5]
    result = membership_inference(tiny_model(), tokenizer, records, list(records))
    assert result["min_k"]["auc"] == 0.5
    assert result["loss"]["auc"] == 0.5
