"""Composing two patches: P12 = P1 then P2, as one patch of the same base.

P2 must have been made on top of P1's result: wherever both change an entry, P2's old value
must be P1's new one (bit for bit), else composing them is refused. Where both change an entry
the composed entry goes from P1's old value to P2's new one; an entry that P2 puts back to the
base's value is no longer a change and is left out. Entries that only one patch touches are
taken from it. (Outside the overlap the check cannot be made from the patches alone: P2's old
values there are the base's, which neither patch holds.)
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from wagle.errors import WagleError
from wagle.patches.bits import bits, index_dtype
from wagle.patches.files import PatchFile, PatchWriter, open_patch
from wagle.patches.signature import check_signature

Entries = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def compose_patches(
    first: str | os.PathLike | PatchFile,
    second: str | os.PathLike | PatchFile,
    out: str | os.PathLike,
    metadata: dict[str, Any] | None = None,
) -> PatchFile:
    """Write the patch equal to applying ``first`` then ``second`` to ``out``."""
    p1, p2 = open_patch(first), open_patch(second)
    check_signature(
        p1.base_signature, p2.base_signature, f"patch {p2.path}", f"the base of {p1.path}"
    )
    names = sorted(set(p1.names) | set(p2.names))
    for name in sorted(set(p1.names) & set(p2.names)):  # refuse before writing anything
        _check_chained(p1, p2, name)
    composed = {"composed_of": [_summary(p1), _summary(p2)]}
    with PatchWriter(out, p1.base_signature) as writer:
        for name in names:
            entries = merge(_entries(p1, name), _entries(p2, name), p1.base_signature[name][0])
            if entries is not None:
                writer.add(name, *entries)
        return writer.finish(composed | (metadata or {}))


def merge(a: Entries | None, b: Entries | None, shape: tuple[int, ...]) -> Entries | None:
    """The entries of ``a`` then ``b`` on one tensor: positions are the union (ascending), old
    values from ``a`` where it has them, new values from ``b`` where it has them; entries whose
    bits end where they started are dropped."""
    if a is None or b is None:
        return a if b is None else b
    (ia, oa, na), (ib, ob, nb) = a, b
    index = torch.unique(torch.cat([ia.long(), ib.long()]))  # sorted
    at_a, at_b = torch.searchsorted(index, ia.long()), torch.searchsorted(index, ib.long())
    old, new = (
        torch.empty(index.numel(), dtype=oa.dtype),
        torch.empty(index.numel(), dtype=oa.dtype),
    )
    old[at_b], old[at_a] = ob, oa  # a's old value wins where both have one
    new[at_a], new[at_b] = na, nb  # b's new value wins
    keep = bits(old) != bits(new)
    if not keep.any():
        return None
    return index[keep].to(index_dtype(math.prod(shape))), old[keep], new[keep]


def _check_chained(p1: PatchFile, p2: PatchFile, name: str) -> None:
    i1, n1 = p1.read(name, "index", "new")
    i2, o2 = p2.read(name, "index", "old")
    both, in1, in2 = _intersect(i1.long(), i2.long())
    differ = int((bits(n1[in1]) != bits(o2[in2])).sum())
    if differ:
        raise WagleError(
            f"patch {p2.path} was not made on top of {p1.path}'s result: at {name}, {differ} of "
            f"the {both} entries both patches change hold another value in its base than "
            f"{p1.path} leaves there"
        )


def _intersect(a: torch.Tensor, b: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """(count, positions in a, positions in b) of the values common to two ascending tensors."""
    in_b = torch.isin(a, b)
    common = a[in_b]
    return common.numel(), in_b.nonzero().reshape(-1), torch.searchsorted(b, common)


def _entries(patch: PatchFile, name: str) -> Entries | None:
    return patch.read(name, "index", "old", "new") if name in patch.entries else None


def _summary(patch: PatchFile) -> dict[str, Any]:
    """What a composed patch records of a part: its metadata without the base's tensor list."""
    meta = {k: v for k, v in patch.metadata.items() if k not in ("base", "result")}
    base = {"values_sha256": patch.metadata["base"]["values_sha256"]}
    return {"path": str(patch.path), **meta, "base": base, "result": patch.metadata["result"]}
