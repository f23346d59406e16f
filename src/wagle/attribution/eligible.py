"""Which parameters attribution may select: a named preset, optionally narrowed by a regex.

Names are those of ``model.named_parameters()`` (tied weights appear once, under their first
name). The mask covers every parameter; ineligible ones are simply never selected.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from wagle.errors import WagleError
from wagle.registry import lookup, register

ELIGIBLE: dict[str, Callable[[torch.nn.Module], list[str]]] = {}


@register(ELIGIBLE, "all")
def all_parameters(model: torch.nn.Module) -> list[str]:
    """Every parameter: embeddings, norms, biases, linear weights, head."""
    return [name for name, _ in model.named_parameters()]


@register(ELIGIBLE, "linear")
def linear_weights(model: torch.nn.Module) -> list[str]:
    """The weight of every ``nn.Linear`` (the output head included)."""
    return _names_of(model, {id(m.weight) for m in _linears(model)})


@register(ELIGIBLE, "block-linear")
def block_linear_weights(model: torch.nn.Module) -> list[str]:
    """Linear weights of the transformer blocks: every ``nn.Linear`` but the output head."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    excluded = {id(head.weight)} if head is not None else set()
    return _names_of(model, {id(m.weight) for m in _linears(model)} - excluded)


def eligible_names(model: torch.nn.Module, preset: str, pattern: str | None = None) -> list[str]:
    """Parameter names of ``preset`` (model order) whose name matches ``pattern`` (re.search)."""
    names = lookup(ELIGIBLE, preset, "eligible-parameter preset")(model)
    if pattern:
        names = [n for n in names if re.search(pattern, n)]
    if not names:
        raise WagleError(
            f"no parameter is eligible (preset {preset!r}, pattern {pattern!r}); "
            f"e.g. the model has {next(iter(dict(model.named_parameters())))!r}"
        )
    return names


def _linears(model: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]


def _names_of(model: torch.nn.Module, ids: set[int]) -> list[str]:
    return [name for name, p in model.named_parameters() if id(p) in ids]
