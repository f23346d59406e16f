"""Mask files: safetensors (never pickles), packed, read lazily one tensor at a time.

Layout (format ``packed-1``): one 1-D tensor per parameter name holding its packed bits or
indices (see packing.py), and string metadata: the user's entries as JSON strings plus
``wagle_mask_layout``, ``{name: [encoding, shape]}``. Files of the first format (one uint8
tensor per parameter in its own shape, no layout) still load.

The file is written by hand in the safetensors format (8-byte header length, JSON header,
tensor bytes) so that only the packed tensors are ever in memory, not a second serialised
copy; ``safetensors.safe_open`` reads it.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from wagle import __version__
from wagle.attribution.masks.mask import Mask, check_shapes
from wagle.attribution.masks.packing import pack, unpack
from wagle.errors import WagleError
from wagle.io import atomic_file
from wagle.validate import read_safetensors_header

LAYOUT_KEY = "wagle_mask_layout"
FORMAT_KEY = "wagle_mask_format"
FORMAT = "packed-1"
_DTYPES = {torch.uint8: "U8", torch.int32: "I32", torch.int64: "I64"}


def save_mask(
    mask: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``mask`` packed and atomically; metadata values are stored as JSON strings.

    ``mask`` may be lazy (a mapping that computes each tensor on access): each tensor is
    read once and packed, so the peak is the packed mask plus one unpacked tensor.
    """
    packed: dict[str, tuple[str, torch.Tensor, tuple[int, ...]]] = {}
    for name, selected in mask.items():
        encoding, data = pack(selected)
        packed[name] = (encoding, data, tuple(selected.shape))
    layout = {name: [enc, list(shape)] for name, (enc, _, shape) in packed.items()}
    meta = {"wagle_version": __version__} | (metadata or {})
    strings = {k: json.dumps(v) for k, v in meta.items()}
    strings |= {FORMAT_KEY: FORMAT, LAYOUT_KEY: json.dumps(layout)}
    header: dict[str, Any] = {"__metadata__": strings}
    offset = 0
    for name, (_, data, _) in packed.items():
        size = data.numel() * data.element_size()
        header[name] = {
            "dtype": _DTYPES[data.dtype],
            "shape": [data.numel()],
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format aligns the data to 8 bytes
    with atomic_file(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        for _, data, _ in packed.values():
            handle.write(data.numpy().tobytes())


class MaskFile(Mapping[str, torch.Tensor]):
    """A mask file opened lazily: ``shapes`` and ``metadata`` from the header; each tensor is
    read and unpacked when accessed (not cached), in file order."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise WagleError(f"mask file not found: {self.path}")
        read_safetensors_header(self.path)  # refuses anything else (a pickle), never unpickling
        try:
            with safe_open(self.path, framework="pt") as handle:
                raw = handle.metadata() or {}
                names = list(handle.keys())
                stored = {n: tuple(handle.get_slice(n).get_shape()) for n in names}
        except Exception as err:  # safetensors raises several types for a corrupt header
            raise WagleError(f"{self.path} is not a readable safetensors mask: {err}") from None
        layout = json.loads(raw[LAYOUT_KEY]) if LAYOUT_KEY in raw else None
        self.encodings = {n: layout[n][0] for n in names} if layout else {}
        self.shapes = {n: tuple(layout[n][1]) for n in names} if layout else stored
        internal = (LAYOUT_KEY, FORMAT_KEY)
        self.metadata = {k: json.loads(v) for k, v in raw.items() if k not in internal}

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.shapes:
            raise KeyError(name)
        with safe_open(self.path, framework="pt") as handle:
            data = handle.get_tensor(name)
        if name not in self.encodings:  # first format: uint8 in the parameter's shape
            return data.bool()
        return unpack(self.encodings[name], data, self.shapes[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


def open_mask(path: str | os.PathLike) -> MaskFile:
    """The mask file at ``path``, read lazily (see ``MaskFile``)."""
    return MaskFile(path)


def load_mask(path: str | os.PathLike, model: torch.nn.Module | None = None) -> Mask:
    """Read a whole mask file; checked against ``model`` (from the header, before any tensor is
    read) and in its parameter order when given."""
    handle = MaskFile(path)
    if model is None:
        return dict(handle.items())
    check_shapes(handle.shapes, model)
    return {name: handle[name] for name, _ in model.named_parameters() if name in handle}


def mask_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata stored with a mask file (the packing layout left out)."""
    return MaskFile(path).metadata
