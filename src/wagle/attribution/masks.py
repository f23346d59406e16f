"""Masks: which weights unlearning may change. A mask maps parameter name → bool tensor.

Stored as safetensors (never pickles), one uint8 tensor per parameter name with the model's
own names and shapes, and string metadata (score method, ratio, γ, fingerprints, version).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from wagle import __version__
from wagle.errors import WagleError
from wagle.io import atomic_file
from wagle.validate import read_safetensors_header

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
        handle.write(canonical_safetensors(payload))


def canonical_safetensors(payload: bytes) -> bytes:
    """The same file with its JSON header's keys sorted, so that equal masks give equal bytes
    (safetensors writes its metadata map in an arbitrary order). Tensor offsets are relative
    to the end of the header, so the data is unchanged; the header is space-padded to 8 bytes."""
    size = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + payload[8 + size :]


def load_mask(path: str | os.PathLike, model: torch.nn.Module | None = None) -> Mask:
    """Read a mask file; checked against ``model`` and in its parameter order when given."""
    path = Path(path)
    if not path.is_file():
        raise WagleError(f"mask file not found: {path}")
    read_safetensors_header(path)  # refuses anything else (a pickle) without unpickling it
    try:
        with safe_open(path, framework="pt") as handle:
            mask = {name: handle.get_tensor(name).bool() for name in handle.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors raises several types for a corrupt header
        raise WagleError(f"{path} is not a readable safetensors mask: {err}") from None
    if model is None:
        return mask
    check_mask(mask, model)
    return {name: mask[name] for name, _ in model.named_parameters() if name in mask}


def mask_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata stored with a mask file."""
    with safe_open(Path(path), framework="pt") as handle:
        raw = handle.metadata() or {}
    return {key: json.loads(value) for key, value in raw.items()}


def complete_mask(mask: Mask, model: torch.nn.Module) -> Mask:
    """``mask`` extended to every parameter of ``model``; parameters it lacks are all False."""
    check_mask(mask, model)
    return {
        name: mask[name] if name in mask else torch.zeros_like(p, dtype=torch.bool)
        for name, p in model.named_parameters()
    }


# ---- statistics: density per group, overlap of two masks -------------------------------------


def layer_of(name: str) -> str:
    """The block index in a parameter name (``model.layers.3.mlp...`` → ``3``), else ``other``."""
    match = re.search(r"\.(\d+)\.", name)
    return match.group(1) if match else "other"


def module_type(name: str) -> str:
    """The module's own name: ``...self_attn.q_proj.weight`` → ``q_proj``."""
    parts = name.split(".")
    return parts[-2] if len(parts) > 1 and parts[-1] in ("weight", "bias") else parts[-1]


GROUPINGS: dict[str, Callable[[str], str]] = {"layer": layer_of, "module": module_type}


def density(mask: Mask, by: Callable[[str], str] | None = None) -> dict[str, tuple[int, int]]:
    """(selected, total) weights per group of parameter names (one group ``all`` without ``by``).

    Layers ``0, 1, …`` come first in numeric order, other groups follow as they appear.
    """
    table: dict[str, tuple[int, int]] = {}
    for name, selected in mask.items():
        group = by(name) if by else "all"
        chosen, total = table.get(group, (0, 0))
        table[group] = (chosen + int(selected.sum()), total + selected.numel())
    return _layers_first(table)


def compare_masks(
    a: Mask, b: Mask, by: Callable[[str], str] | None = None
) -> dict[str, dict[str, float]]:
    """Per group: |A|, |B|, |A∩B|, Jaccard |A∩B|/|A∪B| and overlap |A∩B|/min(|A|,|B|).

    A user error unless both masks name the same parameters with the same shapes.
    """
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise WagleError(f"the masks cover different parameters, e.g. {only[0]!r} is in one only")
    counts: dict[str, list[int]] = {}
    for name, sa in a.items():
        sb = b[name]
        if sa.shape != sb.shape:
            raise WagleError(
                f"the masks disagree on {name}: {tuple(sa.shape)} vs {tuple(sb.shape)}"
            )
        row = counts.setdefault(by(name) if by else "all", [0, 0, 0])
        row[0] += int(sa.sum())
        row[1] += int(sb.sum())
        row[2] += int((sa & sb).sum())
    return {group: _overlap(*row) for group, row in _layers_first(counts).items()}


def _layers_first(table: dict) -> dict:
    """Numeric groups (layers) in numeric order first, then the others as they appeared."""
    digits = sorted((g for g in table if g.isdigit()), key=int)
    return {g: table[g] for g in digits + [g for g in table if not g.isdigit()]}


def _overlap(n_a: int, n_b: int, both: int) -> dict[str, float]:
    either = n_a + n_b - both
    return {
        "a": n_a,
        "b": n_b,
        "both": both,
        "jaccard": both / either if either else 1.0,
        "overlap": both / min(n_a, n_b) if min(n_a, n_b) else 1.0,
    }
