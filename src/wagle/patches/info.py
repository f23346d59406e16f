"""What a patch holds: entries and bytes per layer against the base model's size, and its
metadata (``wagle patch info``)."""

from __future__ import annotations

import math
import os
from typing import Any

from wagle.attribution.masks.stats import layer_of
from wagle.patches.bits import ITEMSIZES
from wagle.patches.files import PatchFile, open_patch


def patch_info(patch: str | os.PathLike | PatchFile) -> dict[str, Any]:
    """Totals, a row per layer (``layer_of``: block index or ``other``) and the metadata."""
    p = open_patch(patch)
    layers: dict[str, dict[str, int]] = {}
    for name, (shape, dtype) in p.base_signature.items():
        row = layers.setdefault(
            layer_of(name),
            dict.fromkeys(("weights", "model_bytes", "entries", "patch_bytes", "tensors"), 0),
        )
        numel = math.prod(shape)
        row["weights"] += numel
        row["model_bytes"] += numel * ITEMSIZES[dtype]
        if name in p.entries:
            row["entries"] += p.entries[name]
            row["patch_bytes"] += p.nbytes[name]
            row["tensors"] += 1
    digits = sorted((k for k in layers if k.isdigit()), key=int)
    layers = {k: layers[k] for k in digits + [k for k in layers if not k.isdigit()]}
    weights = sum(r["weights"] for r in layers.values())
    model_bytes = sum(r["model_bytes"] for r in layers.values())
    return {
        "path": str(p.path),
        "file_bytes": p.file_bytes,
        "entries": p.total_entries,
        "tensors": len(p.names),
        "base_tensors": len(p.base_signature),
        "base_weights": weights,
        "base_bytes": model_bytes,
        "changed_fraction": p.total_entries / weights if weights else 0.0,
        "bytes_ratio": p.file_bytes / model_bytes if model_bytes else 0.0,
        "layers": layers,
        "metadata": {k: v for k, v in p.metadata.items() if k != "base"}
        | {"base": {"values_sha256": p.metadata["base"]["values_sha256"]}},
    }
