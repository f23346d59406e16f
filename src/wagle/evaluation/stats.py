"""The statistics behind the reported figures, as plain functions of per-sample values.

Conventions (DESIGN.md §2, the TOFU and MUSE reference code):

- truth ratio R = P̄(perturbed) / P(paraphrased) = exp(NLL_para − mean_j NLL_pert_j), with
  mean-token NLLs, so P̄(perturbed) is the geometric mean of the perturbed answers'
  length-normalised probabilities. R < 1: the model prefers the true (paraphrased) answer.
- truth-ratio aggregate: mean(min(R, 1/R)) on a forget set, mean(max(0, 1 − R)) elsewhere.
- forget quality: two-sided KS-test p-value between two samples of per-sample truth ratios.
- AUC of a membership score: P(score(member) > score(non-member)), ties count one half.
- PrivLeak (MUSE): (AUC_unlearn − AUC_retain) / AUC_retain × 100 with MUSE's AUC orientation
  ("member scores lower"), which is 1 − a for wagle's "member scores higher" AUC a; so
  PrivLeak = (r − a) / (1 − r) × 100 for the evaluated (a) and retain (r) models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats


def truth_ratio(paraphrased_nll: torch.Tensor, perturbed_nll: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample R [N] from mean NLLs: paraphrased [N] and one [P_i] tensor per sample."""
    perturbed_mean = torch.stack([p.mean() for p in perturbed_nll])
    return torch.exp(paraphrased_nll - perturbed_mean)


def truth_ratio_aggregate(ratios: Sequence[float], forget: bool) -> float:
    """mean(min(R, 1/R)) on a forget set (1 = no preference left), else mean(max(0, 1 − R))."""
    r = np.asarray(ratios, dtype=np.float64)
    per_sample = np.minimum(r, 1 / r) if forget else np.maximum(0.0, 1 - r)
    return float(per_sample.mean())


def ks_pvalue(sample: Sequence[float], reference: Sequence[float]) -> float:
    """Two-sided two-sample Kolmogorov–Smirnov p-value (scipy's default method)."""
    return float(stats.ks_2samp(np.asarray(sample), np.asarray(reference)).pvalue)


def harmonic_mean(values: Sequence[float]) -> float:
    """n / Σ 1/x; 0 as soon as one value is 0 (a collapsed statistic sinks the mean)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0 or (x < 0).any():
        raise ValueError(f"harmonic mean needs non-negative values, got {list(values)}")
    return 0.0 if (x == 0).any() else float(x.size / (1 / x).sum())


def auc(members: Sequence[float], nonmembers: Sequence[float]) -> float:
    """ROC AUC of "higher score = member", from ranks (Mann–Whitney U / (n_m · n_n))."""
    m, n = len(members), len(nonmembers)
    if m == 0 or n == 0:
        raise ValueError("AUC needs at least one member and one non-member score")
    ranks = stats.rankdata(np.concatenate([np.asarray(members), np.asarray(nonmembers)]))
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float(u / (m * n))


def privleak(auc_model: float, auc_retain: float) -> float | None:
    """MUSE's PrivLeak in percent, from "member scores higher" AUCs a (model), r (retain):
    (r − a)/(1 − r)·100. 0 = as private as the retain model; about −100 for a model that
    forgot nothing (a ≈ 1, r ≈ 0.5); None when r = 1 (undefined)."""
    if auc_retain == 1:
        return None
    return (auc_retain - auc_model) / (1 - auc_retain) * 100
