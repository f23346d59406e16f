"""Degeneration: an over-unlearned model that answers forget questions with repetitive or
meaningless text can score a high forget quality (DESIGN.md §4). Two signals catch it:

- ``repetition``: the repeated word n-gram rate of the greedy forget answers,
  mean over answers of 1 − (distinct n-grams / n-grams), n = ``NGRAM`` (3). A fluent answer
  scores about 0, "the the the the ..." scores close to 1; an answer shorter than n words 0.
- ``rouge_gap``: forget ROUGE-L recall minus the reference (retain) model's. A model that never
  saw the forget set still recovers some of each answer from the question and the shared
  templates; falling far *below* it means the answers stopped being answers. 0 = like the
  retain model; ``None`` without a reference.

A model is flagged ``degenerate`` when repetition > ``REPETITION_LIMIT`` (0.25) or, with a
reference, its forget ROUGE is below ``ROUGE_FRACTION`` (0.5) of the reference's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NGRAM = 3
REPETITION_LIMIT = 0.25
ROUGE_FRACTION = 0.5


def repetition_rate(text: str, n: int = NGRAM) -> float:
    """1 − distinct/total word n-grams of ``text``; 0 when it has fewer than n words."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def degeneration(
    generations: Sequence[str], forget_rouge: float, reference_rouge: float | None
) -> dict[str, Any]:
    """``{"repetition", "rouge_gap", "degenerate"}`` of greedy forget answers (module doc)."""
    repetition = sum(map(repetition_rate, generations)) / max(1, len(generations))
    gap = None if reference_rouge is None else forget_rouge - reference_rouge
    collapsed = reference_rouge is not None and forget_rouge < ROUGE_FRACTION * reference_rouge
    return {
        "repetition": repetition,
        "rouge_gap": gap,
        "degenerate": bool(repetition > REPETITION_LIMIT or collapsed),
    }


def section_degeneration(
    sections: dict[str, dict[str, Any]], reference: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The degeneration of an evaluation's ``forget`` section (None if it has no generations)."""
    forget = sections.get("forget", {})
    generations = forget.get("per_sample", {}).get("generation")
    rouge = forget.get("aggregates", {}).get("rouge_l_recall")
    if generations is None or rouge is None:
        return None
    ref = reference["sections"].get("forget", {}) if reference else {}
    return degeneration(generations, rouge, ref.get("aggregates", {}).get("rouge_l_recall"))
