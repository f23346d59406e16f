"""What a patch expects of a model: every tensor's name, shape and dtype (its *signature*).

A signature is ``{name: (shape, dtype name)}`` with safetensors' dtype names (``F32``,
``BF16``, ...), the same whether it is read from a model directory's file headers or from a
loaded model: the tensors ``save_pretrained`` writes are the model's state dict with tied
weights counted once (the first name kept), which is what ``model_tensors`` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wagle.errors import WagleError

if TYPE_CHECKING:
    import torch

Signature = dict[str, tuple[tuple[int, ...], str]]


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of a loaded model as its safetensors files name them: parameters and
    persistent buffers, a tied tensor under its first name only. Values are the live
    tensors (``.data``): writing into them changes the model."""
    seen: set[int] = set()
    tensors = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            tensors[name] = tensor.data
    return tensors


def signature_of(tensors: Mapping[str, Any]) -> Signature:
    """The signature of a mapping of tensors; one that knows its own (``ModelFiles``, read from
    the file headers) is not read."""
    known = getattr(tensors, "signature", None)
    if known is not None:
        return dict(known)
    from wagle.patches.bits import DTYPE_NAMES

    return {n: (tuple(t.shape), DTYPE_NAMES[t.dtype]) for n, t in tensors.items()}


def stored_signature(raw: Mapping[str, list]) -> Signature:
    """A signature as a patch header stores it (``{name: [shape, dtype]}``)."""
    return {name: (tuple(shape), dtype) for name, (shape, dtype) in raw.items()}


def check_signature(expected: Signature, actual: Signature, what: str, role: str) -> None:
    """A user error in one line unless ``actual`` (of ``what``, e.g. ``model runs/x``) has
    exactly the tensors of ``expected`` (``role``, e.g. ``the patch's base``)."""
    if missing := sorted(set(expected) - set(actual)):
        raise WagleError(
            f"{what} does not match {role}: it has no tensor {missing[0]!r} "
            f"({len(missing)} of the {len(expected)} tensors missing)"
        )
    if extra := sorted(set(actual) - set(expected)):
        raise WagleError(
            f"{what} does not match {role}: its tensor {extra[0]!r} is not in {role} "
            f"({len(extra)} such tensors)"
        )
    for name, (shape, dtype) in expected.items():
        if actual[name] != (tuple(shape), dtype):
            shape_there, dtype_there = actual[name]
            raise WagleError(
                f"{what} does not match {role}: {name} is {_shape(shape_there)} {dtype_there} there "
                f"but {_shape(shape)} {dtype} in {role}"
            )


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"
