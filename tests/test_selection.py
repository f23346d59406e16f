"""Exact top-k selection: counts, ties, granularities, and the radix threshold."""

from __future__ import annotations

import pytest
import torch

from wagle.attribution import select_mask
from wagle.attribution.select import kth_largest, n_selected
from wagle.errors import WagleError


def random_scores(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "a.weight": torch.rand(7, 5, generator=g),
        "b.bias": torch.rand(11, generator=g) * 1e-3,
        "c.weight": torch.rand(4, 9, generator=g) * 1e4,
    }


def count(mask: dict[str, torch.Tensor]) -> int:
    return sum(int(m.sum()) for m in mask.values())


@pytest.mark.parametrize("granularity", ["global", "tensor", "row"])
def test_ratio_one_selects_every_weight(granularity):
    mask = select_mask(random_scores(), 1.0, granularity)
    assert all(bool(m.all()) for m in mask.values())


@pytest.mark.parametrize("ratio", [0.01, 0.1, 0.25, 0.5, 0.77, 0.95])
def test_global_selects_exactly_round_ratio_times_n(ratio):
    scores = random_scores()  # 35 + 11 + 36 = 82 weights
    assert count(select_mask(scores, ratio)) == n_selected(82, ratio)


def test_rounding_is_half_up():
    """round(ρ·n): 0.5·3 = 1.5 → 2; 0.25·10 = 2.5 → 3; 0.8·10 = 8; 0.01·10 = 0.1 → 0."""
    assert [n_selected(3, 0.5), n_selected(10, 0.25), n_selected(10, 0.8)] == [2, 3, 8]
    assert n_selected(10, 0.01) == 0


def test_global_selection_equals_sorting_all_scores_together():
    scores = random_scores(seed=1)
    flat = torch.cat([s.flatten() for s in scores.values()])
    k = n_selected(flat.numel(), 0.4)
    expected = torch.zeros_like(flat, dtype=torch.bool)
    expected[torch.sort(flat, descending=True, stable=True).indices[:k]] = True
    mask = select_mask(scores, 0.4)
    assert torch.equal(torch.cat([m.flatten() for m in mask.values()]), expected)


def test_ties_are_filled_in_parameter_then_index_order_the_same_every_time():
    """a = [1, 1, 1], b = [2, 1, 1], ρ = 0.5 → k = 3: b[0] (score 2) beats every 1, then two of
    the five tied 1s: a[0] and a[1], since a comes first in parameter order."""
    scores = {"a": torch.tensor([1.0, 1.0, 1.0]), "b": torch.tensor([2.0, 1.0, 1.0])}
    for _ in range(3):
        mask = select_mask(scores, 0.5)
        assert mask["a"].tolist() == [True, True, False]
        assert mask["b"].tolist() == [True, False, False]


def test_all_equal_scores_select_the_first_k():
    """Ten zeros, ρ = 0.3 → the first three weights (zeros tie with each other)."""
    mask = select_mask({"w": torch.zeros(2, 5)}, 0.3)
    assert mask["w"].flatten().tolist() == [True] * 3 + [False] * 7


def test_global_selection_never_concatenates_the_scores(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.cat called")

    monkeypatch.setattr(torch, "cat", forbidden)
    assert count(select_mask(random_scores(), 0.3)) == n_selected(82, 0.3)


def test_kth_largest_matches_kthvalue_over_a_wide_range_of_values():
    g = torch.Generator().manual_seed(2)
    values = [torch.rand(50, generator=g) * 10.0**e for e in range(-30, 31, 10)]
    values.append(torch.zeros(20))
    flat = torch.cat(values)
    for k in (1, 7, 100, 200, flat.numel()):
        expected = flat.kthvalue(flat.numel() - k + 1).values
        assert kth_largest(values, k) == expected


def test_per_tensor_selects_round_ratio_of_each_tensor():
    mask = select_mask(random_scores(), 0.3, "tensor")
    assert [int(m.sum()) for m in mask.values()] == [
        n_selected(35, 0.3),
        n_selected(11, 0.3),
        n_selected(36, 0.3),
    ]


def test_per_row_selects_the_top_of_each_output_row_with_ties_left_to_right():
    """Rows [3, 1, 2, 0], [5, 5, 5, 5], ρ = 0.5 → k = 2 per row: {3, 2} and the first two 5s."""
    scores = {"w": torch.tensor([[3.0, 1.0, 2.0, 0.0], [5.0, 5.0, 5.0, 5.0]])}
    mask = select_mask(scores, 0.5, "row")
    assert mask["w"].tolist() == [[True, False, True, False], [True, True, False, False]]


def test_per_row_treats_a_vector_as_one_row():
    mask = select_mask({"bias": torch.tensor([0.1, 0.4, 0.3, 0.2])}, 0.5, "row")
    assert mask["bias"].tolist() == [False, True, True, False]


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.01, 2.0])
def test_a_ratio_outside_zero_one_is_an_error(ratio):
    with pytest.raises(WagleError, match=r"ratio must be in \(0, 1\]"):
        select_mask(random_scores(), ratio)


def test_nan_scores_are_an_error():
    with pytest.raises(WagleError, match="NaN"):
        select_mask({"w": torch.tensor([1.0, float("nan")])}, 0.5)


def test_an_unknown_granularity_is_an_error():
    with pytest.raises(WagleError, match="choose one of: global, row, tensor"):
        select_mask(random_scores(), 0.5, "layer")


def test_negative_zero_ranks_as_zero_not_as_the_largest_score():
    """−0.0 has the sign bit set: as raw int32 bits it would outrank every positive score."""
    scores = {"w": torch.tensor([-0.0, 1.0, 2.0, 0.0, 3.0])}
    assert float(kth_largest(list(scores.values()), 1)) == 3.0
    assert float(kth_largest(list(scores.values()), 4)) == 0.0
    assert select_mask(scores, 0.4)["w"].tolist() == [False, False, True, False, True]
    # ties at zero are filled lowest index first, −0.0 and +0.0 alike
    assert select_mask(scores, 0.8)["w"].tolist() == [True, True, True, False, True]
