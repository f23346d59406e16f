"""A saved model directory as a mapping of tensors, read from its safetensors files one tensor
at a time, and located in them byte for byte (so that a patch can be written straight into a
copy of the files: same header, same offsets, only some entries' bytes differ)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from wagle import validate
from wagle.errors import WagleError
from wagle.patches.bits import numpy_view
from wagle.patches.checks import header_entries
from wagle.patches.signature import Signature


@dataclass(frozen=True)
class Location:
    file: str  # the file's name inside the model directory
    start: int  # byte offset of the tensor's first entry in that file
    numel: int
    dtype: str  # safetensors dtype name


class ModelFiles(Mapping[str, torch.Tensor]):
    """The tensors of a model directory (``*.safetensors``, sharded or not); ``signature`` and
    ``locations`` come from the headers, a tensor is read when it is accessed."""

    def __init__(self, path: str | os.PathLike, what: str = "model") -> None:
        self.path = Path(path)
        validate.check_model_dir(str(path), what)
        if not self.path.is_dir():  # a hub id: patches work on files on this machine
            raise WagleError(f"{what} not found: {path} (give a local model directory)")
        self.signature: Signature = {}
        self.locations: dict[str, Location] = {}
        for file, data_start, name, entry in header_entries(self.path):
            shape = tuple(entry["shape"])
            self.signature[name] = (shape, entry["dtype"])
            start = data_start + entry["data_offsets"][0]
            self.locations[name] = Location(file.name, start, math.prod(shape), entry["dtype"])

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.locations:
            raise KeyError(name)
        with safe_open(self.path / self.locations[name].file, framework="pt") as handle:
            return handle.get_tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.signature)

    def __len__(self) -> int:
        return len(self.signature)

    def raw(
        self, name: str, root: str | os.PathLike | None = None, write: bool = False
    ) -> np.ndarray:
        """The bits of tensor ``name`` [numel] as a memory map of its file (in ``root``, a copy
        of this directory, when given): only the pages touched are read; with ``write`` the
        entries assigned go straight to the file."""
        where = self.locations[name]
        if where.numel == 0:
            return np.zeros(0, dtype=numpy_view(where.dtype))
        return np.memmap(
            Path(root or self.path) / where.file,
            dtype=numpy_view(where.dtype),
            mode="r+" if write else "r",
            offset=where.start,
            shape=(where.numel,),
        )
