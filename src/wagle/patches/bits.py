"""Raw bit patterns of tensors: every patch operation compares, copies and hashes bits, never
values.

Arithmetic on values is not reversible in low precision: in bf16, (w + d) − d ≠ w for most
w and d, so a patch stored as deltas cannot be reverted exactly. Comparing values is not exact
either (-0.0 == 0.0, NaN != NaN). Bit patterns have neither problem: a patch stores the old and
the new values themselves, and "changed" means "another bit pattern".
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

# safetensors' dtype names (what file headers and patch fingerprints use) ↔ torch dtypes.
DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
TORCH_DTYPES = {name: dtype for dtype, name in DTYPE_NAMES.items()}
ITEMSIZES = {name: dtype.itemsize for dtype, name in DTYPE_NAMES.items()}
_TORCH_VIEWS = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_NUMPY_VIEWS = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The flat bit patterns of ``tensor`` as signed integers of the same width [numel].

    A view sharing storage when ``tensor`` is contiguous (writing into it writes the tensor).
    """
    return tensor.reshape(-1).view(_TORCH_VIEWS[tensor.element_size()])


def numpy_view(dtype_name: str) -> type:
    """The numpy integer type that holds one entry of safetensors dtype ``dtype_name``."""
    return _NUMPY_VIEWS[ITEMSIZES[dtype_name]]


def index_dtype(numel: int) -> torch.dtype:
    """int32 positions where they fit (tensors below 2³¹ entries), int64 otherwise."""
    return torch.int32 if numel < 2**31 else torch.int64


def raw_bytes(tensor: torch.Tensor) -> np.ndarray:
    """The bytes of a CPU tensor as they are stored (little-endian), without a copy."""
    return bits(tensor.detach().cpu().contiguous()).numpy()


class ValuesHash:
    """SHA-256 over (name, bit patterns) of a sequence of tensors, in the order given."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def update(self, name: str, values: torch.Tensor) -> None:
        self._digest.update(name.encode() + b"\0")
        self._digest.update(raw_bytes(values))

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
