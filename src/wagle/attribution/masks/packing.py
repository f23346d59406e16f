"""One mask tensor in as few bytes as it takes: bits (8 weights per byte) or flat indices.

- ``bits``: the flattened bools packed little-endian, ⌈n/8⌉ bytes (``numpy.packbits``);
- ``indices``: the sorted flat positions of the selected entries, int32 (int64 for tensors of
  2³¹ entries or more): 4·k bytes, fewer than bits when the density k/n is below 1/32.
The smaller of the two is chosen per tensor; an unselected tensor takes 0 bytes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

ENCODINGS = ("bits", "indices")


def pack(selected: torch.Tensor) -> tuple[str, torch.Tensor]:
    """(encoding, 1-D data) of a bool tensor."""
    flat = selected.detach().reshape(-1).to("cpu", torch.bool)
    n, k = flat.numel(), int(flat.sum())
    index_dtype = torch.int32 if n < 2**31 else torch.int64
    if k * index_dtype.itemsize < (n + 7) // 8:
        return "indices", flat.nonzero().reshape(-1).to(index_dtype)
    return "bits", torch.from_numpy(np.packbits(flat.numpy(), bitorder="little"))


def unpack(encoding: str, data: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The bool tensor of ``shape`` that ``pack`` encoded as (encoding, data)."""
    n = math.prod(shape)
    if encoding == "indices":
        out = torch.zeros(n, dtype=torch.bool)
        out[data.long()] = True
        return out.view(shape)
    if encoding == "bits":
        bits = np.unpackbits(data.numpy(), count=n, bitorder="little")
        return torch.from_numpy(bits.view(np.bool_)).view(shape)
    raise ValueError(f"unknown mask encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
