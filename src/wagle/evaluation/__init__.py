"""Evaluation: QA metrics, membership inference, multiple choice, text-corpus metrics.

The pipeline step: ``evaluate(model, tokenizer, EvalConfig(...), reference=...)`` returns the
record that ``write_eval`` saves as ``eval.json``; a retain model's record is the reference
that forget quality is measured against.
"""

from wagle.evaluation.config import EvalConfig
from wagle.evaluation.suite import check_inputs, evaluate, write_eval
from wagle.evaluation.summary import load_reference, summarise

__all__ = [
    "EvalConfig",
    "check_inputs",
    "evaluate",
    "load_reference",
    "summarise",
    "write_eval",
]
