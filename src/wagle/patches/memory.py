"""Applying and reverting a patch on a loaded model, in place, one tensor at a time.

A server holding one model can switch policies without reloading it: ``revert_patch(model, a)``
then ``apply_patch(model, b)``. Each step reads one tensor's entries from the patch file
(``safe_open``), so memory beyond the model is one tensor's patch entries, whatever the size
of the model or the patch.

Nothing is written until the whole patch has been checked (``verify``): the model's signature
(names, shapes, dtypes), then tensor by tensor the bits at every patched position (the base's
old values to apply, the patch's new values to revert), and the patch's own values against the
hashes in its header. A model that does not match is a user error and stays untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch

from wagle.errors import WagleError
from wagle.patches.bits import ValuesHash, bits
from wagle.patches.files import PARTS, PatchFile, open_patch
from wagle.patches.signature import Signature, check_signature, model_tensors, signature_of

# direction → (the part the model must hold now, the part written, the role in messages)
DIRECTIONS = {
    "apply": ("old", "new", "the patch's base"),
    "revert": ("new", "old", "the patch's result"),
}


Model = torch.nn.Module | Mapping[str, torch.Tensor]


def apply_patch(model: Model, patch: str | os.PathLike | PatchFile) -> None:
    """Turn the patch's base model into the patched one, in place (bit for bit). ``model``: a
    loaded model, or a mapping of its tensors (a CPU copy of its state, say)."""
    swap(model, open_patch(patch), "apply")


def revert_patch(model: Model, patch: str | os.PathLike | PatchFile) -> None:
    """Turn the patched model back into the patch's base, in place (bit for bit)."""
    swap(model, open_patch(patch), "revert")


@torch.no_grad()
def swap(model: Model, patch: PatchFile, direction: str, what: str = "the model") -> None:
    tensors = model_tensors(model) if isinstance(model, torch.nn.Module) else model

    def current(name: str, index: torch.Tensor) -> torch.Tensor:
        flat = bits(tensors[name])
        return flat[index.to(flat.device, torch.int64)].cpu()  # int64: twice as fast to index

    verify(patch, signature_of(tensors), current, direction, what)
    if tangled := [n for n in patch.names if not tensors[n].is_contiguous()]:
        raise WagleError(f"{tangled[0]} is not contiguous in memory: cannot patch it in place")
    written = DIRECTIONS[direction][1]
    for name in patch.names:
        index, values = patch.read(name, "index", written)
        flat = bits(tensors[name])
        flat.index_copy_(0, index.to(flat.device, torch.int64), bits(values).to(flat.device))


def verify(
    patch: PatchFile,
    signature: Signature,
    current: Callable[[str, torch.Tensor], torch.Tensor],
    direction: str,
    what: str,
) -> None:
    """A user error unless the model (its ``signature``; ``current(name, index)``: its bits at
    those positions) holds what the patch expects before ``direction``; also checks the patch's
    values against the hashes recorded in its header."""
    holds, _, role = DIRECTIONS[direction]
    check_signature(patch.base_signature, signature, what, role)
    hashes = {"old": ValuesHash(), "new": ValuesHash()}
    for name in patch.names:
        index, old, new = patch.read(name, *PARTS)
        expected, other = (old, new) if holds == "old" else (new, old)
        check_values(current(name, index), expected, other, name, what, role)
        hashes["old"].update(name, old)
        hashes["new"].update(name, new)
    for part, key in (("old", "base"), ("new", "result")):
        if hashes[part].hexdigest() != patch.metadata[key]["values_sha256"]:
            raise WagleError(f"{patch.path} is corrupt: its {part} values do not match their hash")


def check_values(
    current: torch.Tensor,
    expected: torch.Tensor,
    other: torch.Tensor,
    name: str,
    what: str,
    role: str,
) -> None:
    """A user error unless the bits ``current`` [k] equal those of ``expected`` [k]; the
    message says when they are ``other`` (the patch's other side) instead."""
    if torch.equal(current, bits(expected)):
        return
    differ = int((current != bits(expected)).sum())
    applying = role == DIRECTIONS["apply"][2]
    if torch.equal(current, bits(other)):
        hint = "it holds the patch's new values: already patched" if applying else (
            "it holds the base's values: the patch is not applied to it")  # fmt: skip
    else:
        hint = "is it the model the patch was made from?" if applying else "was the patch applied?"
    raise WagleError(
        f"{what} does not match {role}: {name} holds other values at {differ} of its "
        f"{expected.numel()} patched entries ({hint})"
    )
