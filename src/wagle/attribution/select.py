"""From scores to a mask: exact top-k selection, global, per tensor or per output row.

Conventions:
- k = round(ρ·n) with halves rounded up, n the number of scored weights (global), of each
  tensor (``tensor``) or of each row (``row``: first dimension = output rows; a 1-D tensor is
  one row). Exactly k weights are selected per unit.
- Ties at the threshold are filled in a fixed order: parameter order, then flat index (lowest
  first), so the same scores always give the same mask.
- The global threshold is the k-th largest score found by radix selection on the float32 bit
  patterns (non-negative floats order like their bits as int32): four passes over the tensors
  with a 256-bin histogram each; no concatenated copy of all scores is ever made.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from wagle.attribution.masks import Mask
from wagle.attribution.scores import Scores
from wagle.errors import WagleError
from wagle.registry import lookup, register
from wagle.validate import check_ratio

GRANULARITIES: dict[str, Callable[[Scores, float], Mask]] = {}


def select_mask(scores: Scores, ratio: float, granularity: str = "global") -> Mask:
    """Bool mask over the scored parameters: the top ``ratio`` of weights by score."""
    check_ratio(ratio)
    for name, s in scores.items():
        if not bool((s >= 0).all()):  # also false for NaN
            raise WagleError(f"scores of {name} contain NaN or negative values; cannot rank them")
    return lookup(GRANULARITIES, granularity, "granularity")(scores, ratio)


def n_selected(n: int, ratio: float) -> int:
    """round(ρ·n), halves up: 0.5 of 3 weights is 2."""
    return min(n, math.floor(ratio * n + 0.5))


@register(GRANULARITIES, "global")
def select_global(scores: Scores, ratio: float) -> Mask:
    """Exactly round(ρ·N) weights over all tensors together."""
    total = sum(s.numel() for s in scores.values())
    k = n_selected(total, ratio)
    if k == 0:
        return {name: torch.zeros_like(s, dtype=torch.bool) for name, s in scores.items()}
    threshold = kth_largest(list(scores.values()), k)
    above = sum(int((s > threshold).sum()) for s in scores.values())
    ties_left = k - above
    mask: Mask = {}
    for name, s in scores.items():
        selected = s > threshold
        if ties_left > 0:
            ties = (s == threshold).flatten()
            take = ties & (ties.cumsum(0) <= ties_left)
            ties_left -= int(take.sum())
            selected |= take.view_as(s)
        mask[name] = selected
    return mask


@register(GRANULARITIES, "tensor")
def select_per_tensor(scores: Scores, ratio: float) -> Mask:
    """round(ρ·n) weights of each tensor."""
    return {name: select_global({name: s}, ratio)[name] for name, s in scores.items()}


@register(GRANULARITIES, "row")
def select_per_row(scores: Scores, ratio: float) -> Mask:
    """round(ρ·m) weights of each output row of m weights (Wanda's comparison group)."""
    mask: Mask = {}
    for name, s in scores.items():
        rows = s.reshape(s.shape[0], -1) if s.dim() > 1 else s.reshape(1, -1)
        width = rows.shape[1]
        k = n_selected(width, ratio)
        if k in (0, width):
            mask[name] = torch.full_like(s, k == width, dtype=torch.bool)
            continue
        # k-th largest of each row = (width − k + 1)-th smallest; ties filled left to right
        threshold = rows.kthvalue(width - k + 1, dim=1).values[:, None]  # [rows, 1]
        above = rows > threshold
        ties_left = k - above.sum(dim=1, keepdim=True)
        ties = rows == threshold
        mask[name] = (above | (ties & (ties.cumsum(dim=1) <= ties_left))).view_as(s)
    return mask


def kth_largest(tensors: list[torch.Tensor], k: int) -> torch.Tensor:
    """The k-th largest value (1 ≤ k ≤ total size) of non-negative float32 ``tensors``.

    Radix select over the int32 bit patterns, 8 bits per pass from the top: each pass counts,
    among the values that share the prefix fixed so far, how many have each next byte.
    """
    prefix, remaining = 0, k
    for shift in (24, 16, 8, 0):
        counts = torch.zeros(256, dtype=torch.int64)
        for s in tensors:
            bits = s.detach().float().contiguous().view(torch.int32).flatten()
            if shift < 24:
                bits = bits[(bits >> (shift + 8)) == prefix]
            counts += torch.bincount((bits >> shift) & 0xFF, minlength=256).cpu()
        digit, above = _digit_holding(counts.tolist(), remaining)
        prefix, remaining = (prefix << 8) | digit, remaining - above
    return torch.tensor([prefix], dtype=torch.int32).view(torch.float32)[0]


def _digit_holding(counts: list[int], rank: int) -> tuple[int, int]:
    """(the byte value holding the ``rank``-th largest, how many values lie in higher bytes)."""
    above = 0
    for digit in range(255, -1, -1):
        if above + counts[digit] >= rank:
            return digit, above
        above += counts[digit]
    raise ValueError(f"rank {rank} exceeds the {above} values counted")
