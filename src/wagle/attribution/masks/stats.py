"""Mask statistics: density per group of parameters (layer, module type), overlap of two masks.

Masks may be lazy mappings (``open_mask``): each tensor is visited once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

from wagle.errors import WagleError

Masks = Mapping[str, torch.Tensor]


def layer_of(name: str) -> str:
    """The block index in a parameter name (``model.layers.3.mlp...`` → ``3``), else ``other``."""
    match = re.search(r"\.(\d+)\.", name)
    return match.group(1) if match else "other"


def module_type(name: str) -> str:
    """The module's own name: ``...self_attn.q_proj.weight`` → ``q_proj``."""
    parts = name.split(".")
    return parts[-2] if len(parts) > 1 and parts[-1] in ("weight", "bias") else parts[-1]


GROUPINGS: dict[str, Callable[[str], str]] = {"layer": layer_of, "module": module_type}


def density(mask: Masks, by: Callable[[str], str] | None = None) -> dict[str, tuple[int, int]]:
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
    a: Masks, b: Masks, by: Callable[[str], str] | None = None
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
