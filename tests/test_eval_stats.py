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


def test_privacy_leakage_is_relative_to_the_retain_auc():
    """(0.9 − 0.5) / 0.5 = 0.8; a model as private as the retain model scores 0."""
    assert stats.privacy_leakage(0.9, 0.5) == pytest.approx(0.8)
    assert stats.privacy_leakage(0.5, 0.5) == 0.0
