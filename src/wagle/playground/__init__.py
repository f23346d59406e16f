"""The offline playground: fictitious-authors benchmark, tokenizer, target and retain models.

Names are imported on first use: ``PlaygroundConfig`` (and ``wagle playground --help``)
does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PlaygroundConfig": "wagle.playground.config",
    "build_playground": "wagle.playground.build",
    "load_info": "wagle.playground.build",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'wagle.playground' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
