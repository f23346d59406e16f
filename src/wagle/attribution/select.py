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

Sharded scores (FSDP2: ``scores.layouts`` gives a ``wagle.sharding.Layout`` per sharded
parameter, and each score tensor is this process's chunk): the same passes run on the local
chunks and each pass's 256 counts are summed over the processes (one all-reduce of 256
integers), so every process finds the same threshold; ties at it are filled in global order
(parameter, then global flat index) by a radix pass over the global indices of the tied
entries of the one tensor where the budget runs out. No score leaves its process; the mask
returned is the local chunk of each sharded parameter's mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping

import torch

from wagle.attribution.masks import Mask
from wagle.attribution.scores import Scores
from wagle.errors import WagleError
from wagle.registry import lookup, register
from wagle.sharding import Layout, all_reduce_sum_, counted_here
from wagle.validate import check_ratio

GRANULARITIES: dict[str, Callable[[Scores, float], Mask]] = {}
Reduce = Callable[[torch.Tensor], object]  # sums counts over processes in place


def select_mask(scores: Scores, ratio: float, granularity: str = "global") -> Mask:
    """Bool mask (on CPU) over the scored parameters: the top ``ratio`` of weights by score
    (the local chunk of each sharded parameter's mask)."""
    check_ratio(ratio)
    return lookup(GRANULARITIES, granularity, "granularity")(_Checked(scores), ratio)


def n_selected(n: int, ratio: float) -> int:
    """round(ρ·n), halves up: 0.5 of 3 weights is 2."""
    return min(n, math.floor(ratio * n + 0.5))


def numels(scores: Scores) -> dict[str, int]:
    """Weights per scored parameter (global), without computing lazy scores."""
    known = getattr(scores, "numels", None)
    return dict(known) if known is not None else {n: s.numel() for n, s in scores.items()}


@register(GRANULARITIES, "global")
def select_global(scores: Scores, ratio: float) -> Mask:
    """Exactly round(ρ·N) weights over all tensors together."""
    return _top_k(scores, list(scores), n_selected(sum(numels(scores).values()), ratio))


@register(GRANULARITIES, "tensor")
def select_per_tensor(scores: Scores, ratio: float) -> Mask:
    """round(ρ·n) weights of each tensor."""
    sizes = numels(scores)
    return {name: _top_k(scores, [name], n_selected(sizes[name], ratio))[name] for name in scores}


@register(GRANULARITIES, "row")
def select_per_row(scores: Scores, ratio: float) -> Mask:
    """round(ρ·m) weights of each output row of m weights (Wanda's comparison group)."""
    layouts = _layouts(scores)
    mask: Mask = {}
    for name in scores:
        layout = layouts.get(name)
        if layout is not None and len(layout.shape) == 1:  # one row, split over processes
            mask[name] = _top_k(scores, [name], n_selected(layout.shape[0], ratio))[name]
        elif layout is not None and layout.local_shape[1:] != layout.shape[1:]:
            mask[name] = _rows_across_processes(scores[name], layout, ratio)
        else:  # whole rows here
            mask[name] = _rows(scores[name], ratio)
    return mask


def _rows(s: torch.Tensor, ratio: float) -> torch.Tensor:
    """Per-row top-k of a tensor whose rows are all here."""
    rows = s.reshape(s.shape[0], -1) if s.dim() > 1 else s.reshape(1, -1)
    width = rows.shape[1]
    k = n_selected(width, ratio)
    if k in (0, width) or rows.shape[0] == 0:
        return torch.full(s.shape, k == width, dtype=torch.bool)
    # k-th largest of each row = (width − k + 1)-th smallest; ties filled left to right
    threshold = rows.kthvalue(width - k + 1, dim=1).values[:, None]  # [rows, 1]
    above = rows > threshold
    ties_left = k - above.sum(dim=1, keepdim=True)
    ties = rows == threshold
    return (above | (ties & (ties.cumsum(dim=1) <= ties_left))).view_as(s).cpu()


def kth_largest(tensors: Iterable[torch.Tensor], k: int) -> torch.Tensor:
    """The k-th largest value (1 ≤ k ≤ total size) of non-negative float32 ``tensors``
    (a re-iterable collection: a list, or a mapping's ``values()``)."""
    key, _ = _radix_select(lambda: (_float_keys(s) for s in tensors), k)
    return _key_to_float(key)


def _top_k(scores: Scores, names: list[str], k: int) -> Mask:
    """The k highest-scoring weights of tensors ``names`` together (ties in global order)."""
    layouts = _layouts(scores)
    if k == 0:
        return {name: torch.zeros(_local_shape(scores, name), dtype=torch.bool) for name in names}
    reduce = _reduce(layouts)

    def keys() -> Iterator[torch.Tensor]:  # summed over processes: a whole tensor counts once
        for name in names:
            here = reduce is None or counted_here(layouts.get(name))
            yield _float_keys(scores[name]) if here else torch.zeros(0, dtype=torch.int64)

    key, ties_left = _radix_select(keys, k, reduce=reduce)
    threshold = _key_to_float(key)
    mask: Mask = {}
    for name in names:
        s = scores[name]
        selected = s > threshold
        if ties_left > 0:
            take, ties_left = _fill_ties(s == threshold, ties_left, layouts.get(name), reduce)
            selected |= take
        mask[name] = selected.cpu()
    return mask


def _fill_ties(
    ties: torch.Tensor, budget: int, layout: Layout | None, reduce: Reduce
) -> tuple[torch.Tensor, int]:
    """(the tied entries taken, budget left): lowest global flat index first."""
    if layout is None or not _is_shard(layout):  # the whole tensor is here
        flat = ties.flatten()
        take = flat & (flat.cumsum(0) <= budget)
        return take.view_as(ties), budget - int(take.sum())
    total = torch.tensor([int(ties.sum())], dtype=torch.int64)
    reduce(total)
    if int(total) <= budget:
        return ties, budget - int(total)
    # The budget runs out inside this tensor: take the `budget` smallest global indices of
    # its tied entries, all processes together (a radix pass over the indices, largest key =
    # smallest index).
    positions = ties.flatten().nonzero().flatten()
    index = layout.flat_index(positions)
    top = (1 << 40) - 1  # keys stay non-negative for tensors of up to 2^40 entries
    key, _ = _radix_select(lambda: [top - index], budget, passes=5, reduce=reduce)
    take = torch.zeros(ties.numel(), dtype=torch.bool, device=ties.device)
    take[positions[index <= top - key]] = True
    return take.view_as(ties), 0


def _rows_across_processes(s: torch.Tensor, layout: Layout, ratio: float) -> torch.Tensor:
    """Per-row top-k of a 2-D tensor sharded along its columns: one radix select per row,
    vectorised over the rows, with each pass's [rows, 256] counts summed over processes; ties
    filled left to right (processes hold consecutive column ranges in rank order)."""
    if len(layout.shape) != 2:
        raise WagleError("row granularity on a sharded tensor needs it 1-D, 2-D or sharded on rows")
    width = layout.shape[1]
    k = n_selected(width, ratio)
    if k in (0, width):
        return torch.full(s.shape, k == width, dtype=torch.bool)
    reduce = _reduce({"": layout})
    keys = _float_keys(s).view(s.shape)  # int64 [rows, local columns]
    rows = s.shape[0]
    prefix = torch.zeros(rows, dtype=torch.int64, device=s.device)
    remaining = torch.full((rows,), k, dtype=torch.int64, device=s.device)
    base = torch.arange(rows, device=s.device)[:, None] * 256
    for shift in (24, 16, 8, 0):
        digits = base + ((keys >> shift) & 0xFF)  # [rows, columns]: row·256 + byte
        digits = (
            digits[(keys >> (shift + 8)) == prefix[:, None]] if shift < 24 else digits.flatten()
        )
        counts = torch.bincount(digits, minlength=rows * 256).view(rows, 256).cpu()
        reduce(counts)
        at_or_above = counts.flip(1).cumsum(1).flip(1)  # [rows, 256]: values with byte ≥ d
        digit = (at_or_above >= remaining.cpu()[:, None]).sum(1) - 1
        higher = at_or_above.gather(1, (digit + 1).clamp(max=255)[:, None])[:, 0]
        above = torch.where(digit < 255, higher, 0)
        prefix = (prefix << 8) | digit.to(s.device)
        remaining = remaining - above.to(s.device)
    above = keys > prefix[:, None]
    ties = keys == prefix[:, None]
    counts = torch.zeros(layout.mesh.size(), rows, dtype=torch.int64)
    counts[layout.mesh.get_local_rank()] = ties.sum(1).cpu()
    reduce(counts)  # every process's tie count per row
    before = counts[: layout.mesh.get_local_rank()].sum(0).to(s.device)  # ties left of here
    take = ties & (ties.cumsum(1) + before[:, None] <= remaining[:, None])
    return (above | take).cpu()


def _radix_select(
    keys: Callable[[], Iterable[torch.Tensor]], k: int, passes: int = 4, reduce: Reduce = None
) -> tuple[int, int]:
    """(k-th largest key t, how many of the keys equal to t belong to the top k) of the
    non-negative int64 keys that ``keys()`` yields (called once per pass).

    Radix select, 8 bits per pass from the top: each pass counts, among the keys that share
    the prefix fixed so far, how many have each next byte; ``reduce`` sums the counts over
    processes when the keys are spread over them.
    """
    prefix, remaining = 0, k
    top_shift = 8 * (passes - 1)
    for shift in range(top_shift, -1, -8):
        counts = torch.zeros(256, dtype=torch.int64)
        for key in keys():
            if shift < top_shift:
                key = key[(key >> (shift + 8)) == prefix]
            counts += torch.bincount((key >> shift) & 0xFF, minlength=256).cpu()
        if reduce is not None:
            reduce(counts)
        digit, above = _digit_holding(counts.tolist(), remaining)
        prefix, remaining = (prefix << 8) | digit, remaining - above
    return prefix, remaining


def _digit_holding(counts: list[int], rank: int) -> tuple[int, int]:
    """(the byte value holding the ``rank``-th largest, how many values lie in higher bytes)."""
    above = 0
    for digit in range(255, -1, -1):
        if above + counts[digit] >= rank:
            return digit, above
        above += counts[digit]
    raise ValueError(f"rank {rank} exceeds the {above} values counted")


def _float_keys(s: torch.Tensor) -> torch.Tensor:
    """int64 keys that order like the non-negative float32 values: their bits, sign cleared."""
    return (s.detach().float().contiguous().view(torch.int32).flatten() & 0x7FFFFFFF).long()


def _key_to_float(key: int) -> torch.Tensor:
    return torch.tensor([key], dtype=torch.int32).view(torch.float32)[0]


def _is_shard(layout: Layout) -> bool:
    from torch.distributed.tensor import Shard

    return isinstance(layout.placements[0], Shard)


def _layouts(scores: Scores) -> dict[str, Layout | None]:
    return getattr(scores, "layouts", None) or {}


def _reduce(layouts: Mapping[str, Layout | None]) -> Reduce | None:
    """Sum over the processes of the (one) mesh the sharded scores live on; None if none is."""
    groups = {id(layout.mesh): layout.group for layout in layouts.values() if layout is not None}
    if not groups:
        return None
    if len(groups) > 1:
        raise WagleError("sharded parameters on several device meshes cannot be ranked together")
    group = next(iter(groups.values()))
    return lambda counts: all_reduce_sum_(counts, group)


def _local_shape(scores: Scores, name: str) -> tuple[int, ...]:
    layout = _layouts(scores).get(name)
    if layout is not None:
        return layout.local_shape
    params = getattr(scores, "params", None)
    return tuple(params[name].shape) if params is not None else tuple(scores[name].shape)


class _Checked(Mapping[str, torch.Tensor]):
    """``scores`` whose tensors are checked (no NaN, no negative value) as they are read; with
    sharded scores every process learns of a bad chunk anywhere (none is left waiting)."""

    def __init__(self, scores: Scores) -> None:
        self.scores = scores
        self.numels = numels(scores)
        self.params = getattr(scores, "params", None)
        self.layouts = _layouts(scores)
        self._reduce = _reduce(self.layouts)

    def __getitem__(self, name: str) -> torch.Tensor:
        s = self.scores[name]
        bad = torch.tensor([0 if bool((s >= 0).all()) else 1], dtype=torch.int64)  # NaN: bad
        if self._reduce is not None and self.layouts.get(name) is not None:
            self._reduce(bad)
        if int(bad):
            raise WagleError(f"scores of {name} contain NaN or negative values; cannot rank them")
        return s

    def __iter__(self) -> Iterator[str]:
        return iter(self.scores)

    def __len__(self) -> int:
        return len(self.scores)
