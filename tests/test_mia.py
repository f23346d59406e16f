"""Membership attacks: every score on hand-made statistics, the statistics of one forward
pass, the per-sample gradient norm, and the AUCs end to end on a tiny model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

import wagle.evaluation.mia as mia
from wagle.errors import WagleError
from wagle.evaluation.config import MIA_ATTACK_NAMES, EvalConfig
from wagle.evaluation.mia import (
    MIA_ATTACKS,
    SampleStats,
    gradient_norms,
    loss_score,
    membership_inference,
    min_k_plus_plus_score,
    min_k_score,
    reference_score,
    zlib_score,
)
from wagle.evaluation.token_stats import TokenStats, token_statistics

NLL = torch.tensor([0.1, 2.0, 0.5, 3.0, 1.0])  # token log-probs −0.1, −2, −0.5, −3, −1


def _stats(nll, mu=None, sigma=None) -> TokenStats:
    n = len(nll)
    mu = torch.zeros(n) if mu is None else torch.tensor(mu)
    sigma = torch.ones(n) if sigma is None else torch.tensor(sigma)
    return TokenStats(torch.as_tensor(nll), mu, sigma, torch.zeros(n, dtype=torch.bool))


def _sample(nll=NLL, text="the cat sat on the mat", **kw) -> SampleStats:
    tokens = _stats(nll)
    return SampleStats(tokens, tokens, text, **kw)


def test_light_names_are_the_registry():
    """``EvalConfig`` checks attack names without torch: its list is the registry's."""
    assert set(MIA_ATTACK_NAMES) == set(MIA_ATTACKS)


def test_loss_is_minus_the_mean_nll():
    """−(0.1 + 2 + 0.5 + 3 + 1) / 5 = −1.32."""
    assert loss_score(_sample(), 0.4) == pytest.approx(-1.32)


def test_zlib_divides_by_the_compressed_length():
    """zlib.compress(b"the cat sat on the mat") is 27 bytes: −1.32 / 27 = −0.048889."""
    assert zlib_score(_sample(), 0.4) == pytest.approx(-1.32 / 27)


def test_reference_subtracts_the_reference_models_nll():
    """mean NLL 1.32, reference 1.0: −(1.32 − 1.0) = −0.32."""
    assert reference_score(_sample(reference_nll=1.0), 0.4) == pytest.approx(-0.32)


def test_min_k_averages_the_log_probs_of_the_least_likely_tokens():
    """k = 0.4 of 5 tokens → int(2.0) = 2 lowest log-probs −3 and −2: score −2.5; k = 0.1 →
    int(0.5) = 0, raised to 1: −3; k = 1: every token, the loss score −1.32."""
    assert min_k_score(_sample(), 0.4) == pytest.approx(-2.5)
    assert min_k_score(_sample(), 0.1) == pytest.approx(-3.0)
    assert min_k_score(_sample(), 1.0) == pytest.approx(-1.32)


def test_min_k_plus_plus_normalises_by_the_models_own_distribution():
    """log p = (−1, −2, −0.5), μ = (−1.5, −1, −0.5), σ = (0.5, 2, 0.0005 → 1e-3):
    z = (1, −0.5, 0). k = 0.4 of 3 → 1 lowest: −0.5; k = 1: mean 1/6."""
    tokens = _stats([1.0, 2.0, 0.5], mu=[-1.5, -1.0, -0.5], sigma=[0.5, 2.0, 0.0005])
    sample = SampleStats(tokens, tokens, "")
    assert min_k_plus_plus_score(sample, 0.4) == pytest.approx(-0.5)
    assert min_k_plus_plus_score(sample, 1.0) == pytest.approx(1 / 6)


class BiasLM(torch.nn.Module):
    """Logits = one bias vector over V = 2 tokens at every position (zero: p = (½, ½))."""

    def __init__(self, bias=(0.0, 0.0)) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor(bias))

    @property
    def device(self) -> torch.device:
        return self.bias.device

    def forward(self, input_ids, attention_mask):
        b, t = input_ids.shape
        return SimpleNamespace(logits=self.bias.expand(b, t, 2))


def test_gradnorm_by_hand():
    """p = (½, ½), one token labelled 0: ∇_b NLL = p − e₀ = (−½, ½): ‖·‖₂ = 0.707107, ‖·‖₁ = 1,
    ‖·‖∞ = ½. Tokens 0 and 1: the mean gradient is 0, unless the last is an appended EOS."""
    one = {"input_ids": [5, 6], "labels": [-100, 0]}
    two = {"input_ids": [5, 6, 7], "labels": [-100, 0, 1]}
    for p, expected in ((2, math.sqrt(0.5)), (1, 1.0), (float("inf"), 0.5)):
        assert gradient_norms(BiasLM(), [one], [False], p) == [pytest.approx(expected)]
    assert gradient_norms(BiasLM(), [two, two], [False, True], 2) == [
        pytest.approx(0.0),
        pytest.approx(math.sqrt(0.5)),
    ]


def test_token_statistics_by_hand():
    """Bias (ln 3, 0): p = (¾, ¼) everywhere. Label 0: NLL ln 4/3 = 0.287682, hit; label 1:
    NLL ln 4 = 1.386294, miss. μ = ¾ ln ¾ + ¼ ln ¼ = −0.562335; σ² = ¾ (ln ¾)² + ¼ (ln ¼)² − μ²
    = 0.542524 − 0.316221 = 0.226303, σ = 0.475713."""
    example = {"input_ids": [5, 6, 7], "labels": [-100, 0, 1]}
    (stats,) = token_statistics(BiasLM((math.log(3), 0.0)), [example], pad_token_id=0)
    torch.testing.assert_close(stats.nll, torch.tensor([math.log(4 / 3), math.log(4)]))
    torch.testing.assert_close(stats.mu, torch.full((2,), -0.5623351446))
    torch.testing.assert_close(stats.sigma, torch.full((2,), 0.4757130754))
    assert stats.hit.tolist() == [True, False]


def _fixed(monkeypatch, members, nonmembers):
    """Token statistics given by the test instead of a model, per group, in record order."""
    given = iter([[_stats(n) for n in members], [_stats(n) for n in nonmembers]])
    monkeypatch.setattr(mia, "token_statistics", lambda *args: next(given))


def test_min_k_of_a_qa_answer_leaves_out_the_appended_eos(tokenizer, micro_splits, monkeypatch):
    """Member answer tokens NLL [0.1, 0.2] + EOS 3.0; non-member [0.5, 0.6] + EOS 0.1.
    Min-K (k = 0.4) over the text tokens: count max(1, int(0.8)) = 1 → member −0.2,
    non-member −0.6 → AUC 1. (With the EOS the member would score −3.0 and AUC be 0.)
    The loss attack keeps every labelled token: −3.3/3 = −1.1 vs −1.2/3 = −0.4 → AUC 0."""
    members, nonmembers = micro_splits["forget10"][:1], micro_splits["holdout"][:1]
    _fixed(monkeypatch, [[0.1, 0.2, 3.0]], [[0.5, 0.6, 0.1]])
    result = membership_inference(None, tokenizer, members, nonmembers, k=0.4)
    assert result["min_k"]["members"] == [pytest.approx(-0.2)]
    assert result["min_k"]["nonmembers"] == [pytest.approx(-0.6)]
    assert result["min_k"]["auc"] == 1.0
    assert result["loss"]["members"] == [pytest.approx(-1.1)]
    assert result["loss"]["auc"] == 0.0


def test_min_k_of_raw_text_keeps_every_token(tokenizer, monkeypatch):
    """Raw text has no appended EOS: the least likely token (NLL 3.0) is the Min-K score."""
    _fixed(monkeypatch, [[0.1, 0.2, 3.0]], [[0.5, 0.6, 0.1]])
    result = membership_inference(None, tokenizer, ["a text"], ["another"], k=0.4)
    assert result["min_k"]["members"] == [pytest.approx(-3.0)]
    assert result["min_k"]["auc"] == 0.0


def test_zlib_auc_can_differ_from_the_loss_auc(tokenizer, monkeypatch):
    """Equal mean NLL 1.0; the member's text compresses to fewer bytes ("aaaaaaaa": 11 bytes,
    "a quick brown fox": 25): −1/11 < −1/25, so the member scores lower, AUC 0; loss ties, 0.5."""
    _fixed(monkeypatch, [[1.0, 1.0]], [[1.0, 1.0]])
    result = membership_inference(None, tokenizer, ["aaaaaaaa"], ["a quick brown fox"])
    assert result["zlib"]["members"] == [pytest.approx(-1 / 11)]
    assert result["zlib"]["nonmembers"] == [pytest.approx(-1 / 25)]
    assert (result["zlib"]["auc"], result["loss"]["auc"]) == (0.0, 0.5)


def test_every_attack_is_at_chance_on_identical_sets(tokenizer, tiny_model, micro_splits):
    """Identical member and non-member sets score identically: every pair ties, AUC = 0.5; the
    model as its own reference scores 0 everywhere."""
    records = micro_splits["forget10"][:5]
    model = tiny_model()
    result = membership_inference(
        model, tokenizer, records, list(records), attacks=list(MIA_ATTACKS), reference_model=model
    )
    assert {name: result[name]["auc"] for name in MIA_ATTACKS} == dict.fromkeys(MIA_ATTACKS, 0.5)
    assert result["reference"]["members"] == [pytest.approx(0.0, abs=1e-5)] * 5
    assert all(p.grad is None for p in model.parameters())  # gradnorm cleared its gradients


def test_attack_options_are_checked_before_anything_loads():
    with pytest.raises(WagleError, match="unknown membership attack 'bogus'"):
        EvalConfig(mia_attacks=["loss", "bogus"])
    with pytest.raises(WagleError, match="needs --mia-reference-model"):
        EvalConfig(mia_attacks=["reference"])
    with pytest.raises(WagleError, match="gradnorm_p must be 1, 2 or inf"):
        EvalConfig(gradnorm_p=3)
    assert EvalConfig(mia_reference_model="retain/").mia_attacks[-1] == "reference"
