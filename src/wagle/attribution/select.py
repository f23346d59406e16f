"""From scores to a mask: exact top-k selection, global, per tensor or per output row.

Conventions:
- k = round(ρ·n) with halves rounded up, n the number of scored weights (global), of each
  tensor (``tensor``) or of each row (``row``: first dimension = output rows; a 1-D tensor is
  one row). Exactly k weights are selected per unit.
- Ties at the threshold are filled in a fixed order: parameter order, then flat index (lowest
  first), so the same scores always give the same mask.
- The global threshold is the k-th largest score found by radix selection on the float32 bit
  patterns (non-negative floats order like their bits as int32; −0.0, whose sign bit is set,
  counts as +0.0): four passes over the tensors with a 256-bin histogram each; no concatenated
  copy of all scores is ever made. Scores may be lazy (``LazyScores``): each pass reads one
  tensor at a time, so selection holds one tensor's scores, plus the bool mask (kept on CPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping

import torch

from wagle.attribution.masks import Mask
from wagle.attribution.scores import Scores
from wagle.errors import WagleError
from wagle.registry import lookup, register
from wagle.validate import check_ratio

GRANULARITIES: dict[str, Callable[[Scores, float], Mask]] = {}


def select_mask(scores: Scores, ratio: float, granularity: str = "global") -> Mask:
    """Bool mask (on CPU) over the scored parameters: the top ``ratio`` of weights by score."""
    check_ratio(ratio)
    return lookup(GRANULARITIES, granularity, "granularity")(_Checked(scores), ratio)


def n_selected(n: int, ratio: float) -> int:
    """round(ρ·n), halves up: 0.5 of 3 weights is 2."""
    return min(n, math.floor(ratio * n + 0.5))


def numels(scores: Scores) -> dict[str, int]:
    """Weights per scored parameter, without computing lazy scores."""
    known = getattr(scores, "numels", None)
    return dict(known) if known is not None else {n: s.numel() for n, s in scores.items()}


@register(GRANULARITIES, "global")
def select_global(scores: Scores, ratio: float) -> Mask:
    """Exactly round(ρ·N) weights over all tensors together."""
    k = n_selected(sum(numels(scores).values()), ratio)
    if k == 0:
        return {name: torch.zeros(n, dtype=torch.bool) for name, n in _shapes(scores)}
    threshold, ties_left = _radix_select(scores.values(), k)
    mask: Mask = {}
    for name in scores:
        s = scores[name]
        selected = s > threshold
        if ties_left > 0:
            ties = (s == threshold).flatten()
            take = ties & (ties.cumsum(0) <= ties_left)
            ties_left -= int(take.sum())
            selected |= take.view_as(s)
        mask[name] = selected.cpu()
    return mask


@register(GRANULARITIES, "tensor")
def select_per_tensor(scores: Scores, ratio: float) -> Mask:
    """round(ρ·n) weights of each tensor."""
    return {name: select_global({name: scores[name]}, ratio)[name] for name in scores}


@register(GRANULARITIES, "row")
def select_per_row(scores: Scores, ratio: float) -> Mask:
    """round(ρ·m) weights of each output row of m weights (Wanda's comparison group)."""
    mask: Mask = {}
    for name in scores:
        s = scores[name]
        rows = s.reshape(s.shape[0], -1) if s.dim() > 1 else s.reshape(1, -1)
        width = rows.shape[1]
        k = n_selected(width, ratio)
        if k in (0, width):
            mask[name] = torch.full(s.shape, k == width, dtype=torch.bool)
            continue
        # k-th largest of each row = (width − k + 1)-th smallest; ties filled left to right
        threshold = rows.kthvalue(width - k + 1, dim=1).values[:, None]  # [rows, 1]
        above = rows > threshold
        ties_left = k - above.sum(dim=1, keepdim=True)
        ties = rows == threshold
        mask[name] = (above | (ties & (ties.cumsum(dim=1) <= ties_left))).view_as(s).cpu()
    return mask


def kth_largest(tensors: Iterable[torch.Tensor], k: int) -> torch.Tensor:
    """The k-th largest value (1 ≤ k ≤ total size) of non-negative float32 ``tensors``
    (a re-iterable collection: a list, or a mapping's ``values()``)."""
    return _radix_select(tensors, k)[0]


def _radix_select(tensors: Iterable[torch.Tensor], k: int) -> tuple[torch.Tensor, int]:
    """(k-th largest value t, how many of the values equal to t belong to the top k).

    Radix select over the int32 bit patterns, 8 bits per pass from the top: each pass counts,
    among the values that share the prefix fixed so far, how many have each next byte. The
    sign bit is cleared first, so −0.0 ranks as +0.0 (both compare equal as floats).
    """
    prefix, remaining = 0, k
    for shift in (24, 16, 8, 0):
        counts = torch.zeros(256, dtype=torch.int64)
        for s in tensors:
            bits = s.detach().float().contiguous().view(torch.int32).flatten() & 0x7FFFFFFF
            if shift < 24:
                bits = bits[(bits >> (shift + 8)) == prefix]
            counts += torch.bincount((bits >> shift) & 0xFF, minlength=256).cpu()
        digit, above = _digit_holding(counts.tolist(), remaining)
        prefix, remaining = (prefix << 8) | digit, remaining - above
    return torch.tensor([prefix], dtype=torch.int32).view(torch.float32)[0], remaining


def _digit_holding(counts: list[int], rank: int) -> tuple[int, int]:
    """(the byte value holding the ``rank``-th largest, how many values lie in higher bytes)."""
    above = 0
    for digit in range(255, -1, -1):
        if above + counts[digit] >= rank:
            return digit, above
        above += counts[digit]
    raise ValueError(f"rank {rank} exceeds the {above} values counted")


def _shapes(scores: Scores) -> Iterator[tuple[str, tuple[int, ...]]]:
    params = getattr(scores, "params", None)
    for name in scores:
        yield name, tuple(params[name].shape) if params is not None else tuple(scores[name].shape)


class _Checked(Mapping[str, torch.Tensor]):
    """``scores`` whose tensors are checked (no NaN, no negative value) as they are read."""

    def __init__(self, scores: Scores) -> None:
        self.scores = scores
        self.numels = numels(scores)
        self.params = getattr(scores, "params", None)

    def __getitem__(self, name: str) -> torch.Tensor:
        s = self.scores[name]
        if not bool((s >= 0).all()):  # also false for NaN
            raise WagleError(f"scores of {name} contain NaN or negative values; cannot rank them")
        return s

    def __iter__(self) -> Iterator[str]:
        return iter(self.scores)

    def __len__(self) -> int:
        return len(self.scores)
