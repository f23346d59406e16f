"""Masks: which weights unlearning may change. A mask maps parameter name → bool tensor.

Stored as safetensors (never pickles), one uint8 tensor per parameter name with the model's
own names and shapes, and string metadata (score method, ratio, γ, fingerprints, version).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from wagle import __version__
from wagle.errors import WagleError
from wagle.io import atomic_file

Mask = dict[str, torch.Tensor]


def check_mask(mask: Mask, model: torch.nn.Module) -> None:
    """A user error, in one line, unless ``mask`` names only ``model``'s parameters, shapes equal."""
    params = dict(model.named_parameters())
    if unknown := sorted(set(mask) - set(params)):
        raise WagleError(
            f"mask does not fit this model: {len(unknown)} name(s) not in the model, e.g. {unknown[0]!r}"
        )
    for name, selected in mask.items():
        if tuple(selected.shape) != tuple(params[name].shape):
            raise WagleError(
                f"mask does not fit this model: {name} is {tuple(selected.shape)} in the mask "
                f"but {tuple(params[name].shape)} in the model"
            )


def save_mask(mask: Mask, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> None:
    """Write ``mask`` atomically; metadata values are stored as JSON strings."""
    tensors = {name: selected.to(torch.uint8).contiguous().cpu() for name, selected in mask.items()}
    meta = {"wagle_version": __version__} | (metadata or {})
    payload = save(tensors, metadata={k: json.dumps(v) for k, v in meta.items()})
    with atomic_file(path, "wb") as handle:
        handle.write(payload)


def load_mask(path: str | os.PathLike, model: torch.nn.Module | None = None) -> Mask:
    """Read a mask file (checked against ``model`` when given)."""
    path = Path(path)
    if not path.is_file():
        raise WagleError(f"mask file not found: {path}")
    try:
        with safe_open(path, framework="pt") as handle:
            mask = {name: handle.get_tensor(name).bool() for name in handle.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors raises several types for a corrupt header
        raise WagleError(f"{path} is not a readable safetensors mask: {err}") from None
    if model is not None:
        check_mask(mask, model)
    return mask


def mask_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata stored with a mask file."""
    with safe_open(Path(path), framework="pt") as handle:
        raw = handle.metadata() or {}
    return {key: json.loads(value) for key, value in raw.items()}
