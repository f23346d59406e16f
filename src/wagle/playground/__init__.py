"""The offline playground: fictitious-authors benchmark, tokenizer, target and retain models.

Names are imported on first use: ``PlaygroundConfig`` (and ``wagle playground --help``)
does not load torch.
"""

from __future__ import annotations

from wagle.lazy import lazy_exports

_EXPORTS = {
    "PlaygroundConfig": "wagle.playground.config",
    "build_playground": "wagle.playground.build",
    "load_info": "wagle.playground.build",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
