"""Applying and reverting a patch on a saved model directory, writing a new directory.

The patched model's files have the same headers and offsets as the input's; only the bytes of
patched entries differ. So the input's files are copied as they are into a temporary sibling
of the output (tokenizer and config included), each patched tensor's entries are written into
the copy through a memory map, and the directory is renamed into place. Nothing is loaded into
a model, nothing is converted (bit-exact in any dtype), and memory holds one tensor's patch
entries at a time. The model is checked against the patch (signature from the file headers,
then the bits at every patched position) before anything is written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from wagle.errors import WagleError
from wagle.io import atomic_dir
from wagle.patches.bits import raw_bytes
from wagle.patches.files import PatchFile, open_patch
from wagle.patches.memory import DIRECTIONS, verify
from wagle.patches.modelfiles import ModelFiles


def apply_patch_files(
    model: str | os.PathLike, patch: str | os.PathLike | PatchFile, out: str | os.PathLike
) -> Path:
    """Write ``model`` (a directory) with ``patch`` applied to ``out``; returns ``out``."""
    return patch_directory(model, open_patch(patch), out, "apply")


def revert_patch_files(
    model: str | os.PathLike, patch: str | os.PathLike | PatchFile, out: str | os.PathLike
) -> Path:
    """Write ``model`` (a patched directory) with ``patch`` reverted to ``out``."""
    return patch_directory(model, open_patch(patch), out, "revert")


def patch_directory(
    model: str | os.PathLike, patch: PatchFile, out: str | os.PathLike, direction: str
) -> Path:
    files = ModelFiles(model)
    if files.path.resolve() in Path(out).resolve().parents:
        raise WagleError(f"--out {out} is inside the model directory {model}; choose another place")

    def current(name: str, index: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(files.raw(name)[index.numpy()])

    verify(patch, files.signature, current, direction, f"model {model}")
    written = DIRECTIONS[direction][1]
    with atomic_dir(out) as tmp:
        copy_directory(files.path, tmp)
        for name in patch.names:
            index, values = patch.read(name, "index", written)
            target = files.raw(name, root=tmp, write=True)
            target[index.numpy()] = raw_bytes(values)
            target.flush()
            del target
    return Path(out)


def copy_directory(source: Path, target: Path) -> None:
    """Every file and folder of ``source`` into the existing directory ``target``."""
    for entry in source.iterdir():
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name)
        else:
            shutil.copyfile(entry, target / entry.name)
