"""Membership inference: Min-K% and loss scores on known token NLLs, AUC on a tiny model."""

from __future__ import annotations

import pytest
import torch

from wagle.evaluation.mia import MIA_ATTACKS, membership_inference

NLL = torch.tensor([0.1, 2.0, 0.5, 3.0, 1.0])  # token log-probs −0.1, −2, −0.5, −3, −1


def test_min_k_averages_the_log_probs_of_the_least_likely_tokens():
    """k = 0.4 of 5 tokens → int(2.0) = 2 lowest log-probs −3 and −2: score −2.5."""
    assert MIA_ATTACKS["min_k"](NLL, 0.4) == pytest.approx(-2.5)


def test_min_k_uses_at_least_one_token():
    """k = 0.1 of 5 tokens → int(0.5) = 0, raised to 1: the lowest log-prob, −3."""
    assert MIA_ATTACKS["min_k"](NLL, 0.1) == pytest.approx(-3.0)


def test_min_k_with_k_one_is_the_loss_score():
    """All tokens: −(0.1 + 2 + 0.5 + 3 + 1) / 5 = −1.32, the negative mean NLL."""
    assert MIA_ATTACKS["min_k"](NLL, 1.0) == pytest.approx(-1.32)
    assert MIA_ATTACKS["loss"](NLL, 0.4) == pytest.approx(-1.32)


def test_membership_inference_reports_auc_and_scores_of_both_groups(
    tokenizer, tiny_model, micro_splits
):
    members, nonmembers = micro_splits["forget10"][:6], micro_splits["holdout"][:4]
    result = membership_inference(tiny_model(), tokenizer, members, nonmembers, k=0.2)
    assert result["k"] == 0.2
    for name in MIA_ATTACKS:
        assert 0.0 <= result[name]["auc"] <= 1.0
        assert (len(result[name]["members"]), len(result[name]["nonmembers"])) == (6, 4)


def test_membership_inference_detects_the_same_samples_at_chance(
    tokenizer, tiny_model, micro_splits
):
    """Identical member and non-member sets score identically: every pair ties, AUC = 0.5."""
    records = micro_splits["forget10"][:5]
    result = membership_inference(tiny_model(), tokenizer, records, list(records))
    assert result["min_k"]["auc"] == 0.5
    assert result["loss"]["auc"] == 0.5
