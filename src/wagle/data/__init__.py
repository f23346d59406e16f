"""Data: loading TOFU-schema QA, text corpora and multiple choice; prompts; collation.

Names are imported on first use, so the light modules (``wagle.data.load``, the playground
generator) do not load torch. (``collate`` is not re-exported: the name is its submodule's;
import it from ``wagle.data.collate``.)
"""

from __future__ import annotations

from wagle.lazy import lazy_exports

_EXPORTS = {
    "encode_records": "wagle.data.batching",
    "iter_batches": "wagle.data.batching",
    "load_mcq": "wagle.data.load",
    "load_qa": "wagle.data.load",
    "load_text": "wagle.data.load",
    "PROMPT_FORMATS": "wagle.data.prompt",
    "with_prompt_format": "wagle.data.prompt",
    "encode_qa": "wagle.data.prompt",
    "encode_text": "wagle.data.prompt",
    "format_prompt": "wagle.data.prompt",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
