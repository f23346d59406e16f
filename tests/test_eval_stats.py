"""The statistics behind the reported figures, on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from wagle.evaluation import stats


def test_truth_ratio_is_geometric_mean_of_perturbed_over_paraphrased():
    """P(para) = 0.5, P(pert) = 0.25 and 0.0625: geometric mean 0.125, so R = 0.125/0.5 = 0.25."""
    paraphrased = torch.tensor([-math.log(0.5)])
    perturbed = [torch.tensor([-math.log(0.25), -math.log(0.0625)])]
    assert stats.truth_ratio(paraphrased, perturbed).item() == pytest.approx(0.25)


def test_truth_ratio_allows_a_different_number_of_perturbed_answers_per_sample():
    """Sample 2 has one perturbed answer, P = 0.4 against P(para) = 0.8: R = 0.5."""
    paraphrased = torch.tensor([0.0, -math.log(0.8)])
    perturbed = [torch.tensor([0.0, 0.0, 0.0]), torch.tensor([-math.log(0.4)])]
    assert stats.truth_ratio(paraphrased, perturbed).tolist() == pytest.approx([1.0, 0.5])


def test_forget_aggregate_is_mean_of_min_r_and_inverse():
    """R = 0.25, 4, 1: min(R, 1/R) = 0.25, 0.25, 1 → mean 0.5."""
    assert stats.truth_ratio_aggregate([0.25, 4.0, 1.0], forget=True) == pytest.approx(0.5)


def test_non_forget_aggregate_is_mean_of_one_minus_r_clipped_at_zero():
    """R = 0.25, 4, 1: max(0, 1 − R) = 0.75, 0, 0 → mean 0.25."""
    assert stats.truth_ratio_aggregate([0.25, 4.0, 1.0], forget=False) == pytest.approx(0.25)


def test_ks_pvalue_of_identical_samples_is_one():
    sample = [0.1, 0.5, 0.7, 0.2, 0.9]
    assert stats.ks_pvalue(sample, list(sample)) == 1.0


def test_ks_pvalue_of_disjoint_samples_is_tiny():
    """Exact two-sided test, n = m = 10, D = 1: p = 2 / C(20, 10) = 2 / 184756."""
    low, high = [i / 100 for i in range(10)], [1 + i / 100 for i in range(10)]
    assert stats.ks_pvalue(low, high) == pytest.approx(2 / 184756)


def test_harmonic_mean_of_known_values():
    """3 / (1/1 + 1/0.5 + 1/0.25) = 3 / 7."""
    assert stats.harmonic_mean([1.0, 0.5, 0.25]) == pytest.approx(3 / 7)


def test_harmonic_mean_is_zero_when_one_value_is_zero():
    assert stats.harmonic_mean([0.9, 0.0, 0.8]) == 0.0


def test_auc_counts_pairs_where_the_member_scores_higher():
    """Members 3, 1; non-members 2, 0: pairs won 3>2, 3>0, 1>0 (1<2 lost) → 3/4."""
    assert stats.auc([3.0, 1.0], [2.0, 0.0]) == pytest.approx(0.75)


def test_auc_counts_ties_as_one_half():
    """Member 1 against non-members 1 and 0: a tie (½) and a win (1) → 1.5/2 = 0.75."""
    assert stats.auc([1.0], [1.0, 0.0]) == pytest.approx(0.75)


def test_auc_of_perfect_and_reversed_separation():
    assert stats.auc([5.0, 6.0], [1.0, 2.0]) == 1.0
    assert stats.auc([1.0, 2.0], [5.0, 6.0]) == 0.0


def test_privleak_is_muse_percent_with_muse_auc_orientation():
    """MUSE: PrivLeak = (AUC_unlearn − AUC_retain)/AUC_retain·100 with AUCs of "member scores
    lower", i.e. 1 − wagle's. a = 0.9, r = 0.6: MUSE AUCs 0.1 and 0.4, (0.1 − 0.4)/0.4·100 =
    −75. A model that forgot nothing (a = 1.0, r = 0.5): (0 − 0.5)/0.5·100 = −100. The retain
    model itself: 0. Over-unlearned (a = 0.3, r = 0.6): (0.7 − 0.4)/0.4·100 = +75."""
    assert stats.privleak(0.9, 0.6) == pytest.approx(-75.0)
    assert stats.privleak(1.0, 0.5) == pytest.approx(-100.0)
    assert stats.privleak(0.6, 0.6) == 0.0
    assert stats.privleak(0.3, 0.6) == pytest.approx(75.0)
    assert stats.privleak(0.7, 1.0) is None


def test_forget_quality_is_tofus_ks_pvalue_on_fixed_numbers():
    """Truth ratios [1, 2, 3] vs the retain model's [4, 5, 6]: D = 1, and the exact two-sided
    p-value for n = m = 3 is 2 / C(6, 3) = 2/20 = 0.1. TOFU runs the test on 1/R (its
    ``exp(perturbed − paraphrased)``): a monotone map, the same p-value."""
    from wagle.evaluation.summary import forget_quality

    def sections(ratios):
        return {"forget": {"per_sample": {"truth_ratio": ratios}, "aggregates": {}}}

    quality = forget_quality(sections([1.0, 2.0, 3.0]), {"sections": sections([4.0, 5.0, 6.0])})
    assert quality == pytest.approx(0.1)
    assert stats.ks_pvalue([1, 1 / 2, 1 / 3], [1 / 4, 1 / 5, 1 / 6]) == pytest.approx(0.1)
    # D = 2/3: 12 of the 20 equally likely orderings of 3 + 3 values reach it.
    assert stats.ks_pvalue([1.0, 2.0, 5.0], [3.0, 4.0, 6.0]) == pytest.approx(0.6)
