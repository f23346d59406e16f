"""Data: loading TOFU-schema QA, text corpora and multiple choice; prompts; collation.

Names are imported on first use, so the light modules (``wagle.data.load``, the playground
generator) do not load torch. (``collate`` is not re-exported: the name is its submodule's;
import it from ``wagle.data.collate``.)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "encode_records": "wagle.data.batching",
    "iter_batches": "wagle.data.batching",
    "load_mcq": "wagle.data.load",
    "load_qa": "wagle.data.load",
    "load_text": "wagle.data.load",
    "PROMPT_TEMPLATE": "wagle.data.prompt",
    "encode_qa": "wagle.data.prompt",
    "encode_text": "wagle.data.prompt",
    "format_prompt": "wagle.data.prompt",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'wagle.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
