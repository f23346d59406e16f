"""Registries are plain dicts from a name to a function or class.

Each method registers itself next to its definition with one decorator line; an unknown or
duplicate name fails at once and lists the valid choices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from wagle.errors import WagleError

T = TypeVar("T")


def register(registry: dict[str, T], name: str) -> Callable[[T], T]:
    """Decorator: ``@register(SCORES, "snip")`` adds the function under ``name``."""

    def add(obj: T) -> T:
        if name in registry:
            raise ValueError(f"{name!r} is registered twice")
        registry[name] = obj
        return obj

    return add


def lookup(registry: dict[str, T], name: str, kind: str) -> T:
    """``registry[name]``, or a user error naming the valid choices."""
    try:
        return registry[name]
    except KeyError:
        raise WagleError(
            f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}"
        ) from None
