"""Package namespaces whose names are imported on first use, so that importing a light
submodule (a config, a data reader) does not import torch through its package's __init__."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package``: ``exports`` maps a name to its module.

    A name must not be that of one of the package's submodules: once the submodule is
    imported, Python binds the package attribute to the module, not to the name in it.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return __getattr__, sorted(exports)
