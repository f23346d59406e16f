"""Making a patch: the entries whose bits differ between a base model and an unlearned one.

Both models are mappings of tensors read one at a time (a loaded model's ``model_tensors``, a
directory's ``ModelFiles``), so making the patch of a 7B model holds two tensors and the patch
entries of one tensor in memory, never a second model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from wagle.patches.bits import bits, index_dtype
from wagle.patches.files import PatchFile, PatchWriter
from wagle.patches.signature import check_signature, signature_of


def changed_entries(
    base: torch.Tensor, new: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(positions [k], old values [k], new values [k]) of the entries whose bits differ, on
    CPU; None when none does."""
    old_flat, new_flat = base.detach().reshape(-1).cpu(), new.detach().reshape(-1).cpu()
    index = (bits(old_flat) != bits(new_flat)).nonzero().reshape(-1)
    if index.numel() == 0:
        return None
    return index.to(index_dtype(old_flat.numel())), old_flat[index], new_flat[index]


def create_patch(
    base: Mapping[str, torch.Tensor],
    unlearned: Mapping[str, torch.Tensor],
    out: str | os.PathLike,
    metadata: dict[str, Any] | None = None,
    what: str = "the unlearned model",
) -> PatchFile:
    """Write the patch that turns ``base`` into ``unlearned`` (same tensors, shapes and dtypes:
    a user error otherwise) to ``out``, atomically; returns it opened."""
    signature = signature_of(base)
    check_signature(signature, signature_of(unlearned), what, "the base model")
    with PatchWriter(out, signature) as writer, torch.no_grad():
        for name in sorted(signature):
            entries = changed_entries(base[name], unlearned[name])
            if entries is not None:
                writer.add(name, *entries)
        return writer.finish(metadata)
