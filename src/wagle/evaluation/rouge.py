"""ROUGE-L as TOFU and MUSE report it (``rouge-score``, Porter stemmer on)."""

from __future__ import annotations

from functools import cache

from rouge_score import rouge_scorer


@cache
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(predictions: list[str], references: list[str], measure: str = "recall") -> list[float]:
    """Per-sample ROUGE-L ``recall`` (TOFU) or ``fmeasure`` (MUSE) of predictions vs references."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    return [
        getattr(_scorer().score(ref, pred)["rougeL"], measure)
        for pred, ref in zip(predictions, references, strict=True)
    ]
