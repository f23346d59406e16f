"""Evaluation: QA metrics, membership inference, multiple choice, text-corpus metrics.

The pipeline step: ``evaluate(model, tokenizer, EvalConfig(...), reference=...)`` returns the
record that ``write_eval`` saves as ``eval.json``; a retain model's record is the reference
that forget quality is measured against.

Names are imported on first use, so ``wagle.evaluation.config`` (and ``wagle evaluate
--help``) does not load torch.
"""

from __future__ import annotations

from wagle.lazy import lazy_exports

_EXPORTS = {
    "EvalConfig": "wagle.evaluation.config",
    "check_inputs": "wagle.evaluation.suite",
    "evaluate": "wagle.evaluation.suite",
    "write_eval": "wagle.evaluation.suite",
    "load_reference": "wagle.evaluation.summary",
    "summarise": "wagle.evaluation.summary",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
