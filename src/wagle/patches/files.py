"""Patch files: safetensors (never pickles), written as a stream, read one tensor at a time.

Format ``1``. For each changed tensor ``NAME`` of the model (in sorted name order), three 1-D
tensors of k entries, k ≥ 1 the number of entries that changed:

- ``index/NAME``: the flat positions (row-major) of the changed entries, ascending; int32 when
  the tensor has fewer than 2³¹ entries, int64 otherwise;
- ``old/NAME``: the base model's values at those positions, in the model's dtype;
- ``new/NAME``: the patched values, in the model's dtype.

Metadata (JSON strings): ``wagle_patch_format`` (``"1"``), ``base`` (``tensors``: the base
model's signature ``{name: [shape, dtype]}``; ``values_sha256``: SHA-256 over each patched
tensor's name and old values' bits, in file order), ``result`` (``values_sha256`` of the new
values), ``entries``, and whatever the creator records (method, ratio, mask hash, recipe hash,
evaluation summary; see ``wagle.patches.runs``).

The writer streams each tensor's entries into a temporary body file as they are computed, then
writes the header (which needs every offset) and the body behind it, atomically: a patch never
has to fit in memory, and a crash never leaves a file that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from wagle import __version__
from wagle.errors import WagleError
from wagle.io import atomic_file, ensure_writable_dir
from wagle.patches.bits import DTYPE_NAMES, ValuesHash, raw_bytes
from wagle.patches.checks import FORMAT_KEY, patch_header
from wagle.patches.signature import Signature, stored_signature
from wagle.validate import read_safetensors_header

FORMAT = "1"
PARTS = ("index", "old", "new")


class PatchWriter:
    """``with PatchWriter(path, signature) as w``: ``w.add`` each changed tensor (in sorted
    name order), then ``w.finish(metadata)``."""

    def __init__(self, path: str | os.PathLike, base_signature: Signature) -> None:
        self.path = Path(path)
        self.signature = base_signature
        # closed by finish() or on leaving the ``with`` block; removed by the OS when closed
        self._body = tempfile.TemporaryFile(dir=ensure_writable_dir(self.path.parent))  # noqa: SIM115
        self._header: dict[str, Any] = {}
        self._offset = 0
        self._old, self._new = ValuesHash(), ValuesHash()
        self._last = ""
        self.entries = 0

    def __enter__(self) -> PatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._body.close()

    def add(self, name: str, index: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> None:
        """The k changed entries of tensor ``name``: positions [k], old values [k], new [k]."""
        if name <= self._last:
            raise ValueError(
                f"patch tensors must come in sorted order: {name!r} after {self._last!r}"
            )
        dtype = self.signature[name][1]
        if DTYPE_NAMES[old.dtype] != dtype or DTYPE_NAMES[new.dtype] != dtype:
            raise ValueError(f"{name}: values must be {dtype}, got {old.dtype} / {new.dtype}")
        self._last = name
        for part, tensor in zip(PARTS, (index, old, new), strict=True):
            data = raw_bytes(tensor)
            self._body.write(data)
            self._header[f"{part}/{name}"] = {
                "dtype": DTYPE_NAMES[tensor.dtype],
                "shape": [tensor.numel()],
                "data_offsets": [self._offset, self._offset + data.nbytes],
            }
            self._offset += data.nbytes
        self._old.update(name, old)
        self._new.update(name, new)
        self.entries += index.numel()

    def finish(self, metadata: dict[str, Any] | None = None) -> PatchFile:
        """Write the file (header, then the body) atomically; returns it opened."""
        meta = {"wagle_version": __version__} | (metadata or {})
        meta |= {
            "base": {
                "tensors": {n: [list(s), d] for n, (s, d) in sorted(self.signature.items())},
                "values_sha256": self._old.hexdigest(),
            },
            "result": {"values_sha256": self._new.hexdigest()},
            "entries": self.entries,
        }
        strings = {k: json.dumps(v) for k, v in meta.items()} | {FORMAT_KEY: FORMAT}
        raw = json.dumps({"__metadata__": strings, **self._header}, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # the format aligns the data to 8 bytes
        self._body.seek(0)
        with atomic_file(self.path, "wb") as handle:
            handle.write(struct.pack("<Q", len(raw)) + raw)
            shutil.copyfileobj(self._body, handle, 1 << 24)
        return PatchFile(self.path)


class PatchFile:
    """A patch file opened lazily: names, entry counts and metadata from the header; each
    tensor's positions and values are read when asked for (``read``), not cached."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.metadata = patch_header(str(self.path))  # a user error unless it is a patch
        if self.metadata.pop(FORMAT_KEY) != FORMAT:
            raise WagleError(
                f"{self.path} is a patch of another format; this wagle reads format {FORMAT!r}"
            )
        try:
            self.base_signature = stored_signature(self.metadata["base"]["tensors"])
        except (KeyError, TypeError, ValueError):
            raise WagleError(f"{self.path} has a corrupt patch header") from None
        header = read_safetensors_header(self.path)
        self.names = sorted(k.split("/", 1)[1] for k in header if k.startswith("index/"))
        self.entries = {n: header[f"index/{n}"]["shape"][0] for n in self.names}
        self.nbytes = {
            n: sum(
                header[f"{p}/{n}"]["data_offsets"][1] - header[f"{p}/{n}"]["data_offsets"][0]
                for p in PARTS
            )
            for n in self.names
        }

    def read(self, name: str, *parts: str) -> tuple[torch.Tensor, ...]:
        """The named parts (``index``, ``old``, ``new``) of tensor ``name``, as CPU tensors."""
        with safe_open(self.path, framework="pt") as handle:
            return tuple(handle.get_tensor(f"{part}/{name}") for part in parts)

    @property
    def total_entries(self) -> int:
        return sum(self.entries.values())

    @property
    def file_bytes(self) -> int:
        return self.path.stat().st_size


def open_patch(patch: str | os.PathLike | PatchFile) -> PatchFile:
    """A patch file opened lazily (a ``PatchFile`` is returned as it is)."""
    return patch if isinstance(patch, PatchFile) else PatchFile(patch)
