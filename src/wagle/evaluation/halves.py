"""Forget quality on two fixed halves of the forget questions, for honest checkpoint selection.

Picking the best of many checkpoints (steps, learning rates, ratios) by forget quality and then
reporting that same forget quality is optimistic: the maximum of many noisy KS p-values. The
split-half mode of ``wagle report`` picks on half A and reports half B, so each point records

    forget_quality_half_a = KS(ours on A, reference on A)
    forget_quality_half_b = KS(ours on B, reference on B)

with the reference's (retain model's) per-sample truth ratios of the same questions.

The split is by **author** when every forget record names one (the playground's ``author``
field), else by question. An author's questions restate the same facts (an answer repeats two
or three of the author's attributes), so a split by question would leave both halves measuring
the same authors' knowledge and the report half would not be independent of the selection half;
forget sets are also drawn by author (TOFU's forget10 = the last 10% of authors). The split is
fixed (``SPLIT_SEED``): every point of every cell of an experiment uses the same halves.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from wagle.evaluation import stats

SPLIT_SEED = 0
HALF_KEYS = ("forget_quality_half_a", "forget_quality_half_b")


def forget_halves(records: Sequence[dict[str, Any]], seed: int = SPLIT_SEED) -> dict[str, str]:
    """``{question: "a" | "b"}``: the groups (authors, else questions) in order of first
    appearance, shuffled with ``seed``; the first ⌊n/2⌋ groups are half A."""
    by_author = all(isinstance(r.get("author"), str) for r in records)
    group_of = {r["question"]: r["author"] if by_author else r["question"] for r in records}
    groups = list(dict.fromkeys(group_of.values()))
    random.Random(seed).shuffle(groups)
    first = set(groups[: len(groups) // 2])
    return {q: "a" if g in first else "b" for q, g in group_of.items()}


def split_unit(records: Sequence[dict[str, Any]]) -> str:
    """What ``forget_halves`` splits by: ``author`` or ``question``."""
    return "author" if all(isinstance(r.get("author"), str) for r in records) else "question"


def half_forget_qualities(
    questions: Sequence[str],
    truth_ratios: Sequence[float],
    reference: dict[str, Any] | None,
    halves: dict[str, str],
) -> dict[str, float | None]:
    """``HALF_KEYS`` → the KS p-value of each half against the reference's same half (None
    without a reference or when a half is empty on either side)."""
    forget = (reference or {}).get("sections", {}).get("forget", {}).get("per_sample", {})
    theirs = list(zip(forget.get("question") or [], forget.get("truth_ratio") or [], strict=True))
    ours = list(zip(questions, truth_ratios, strict=True))
    result: dict[str, float | None] = {}
    for key, half in zip(HALF_KEYS, "ab", strict=True):
        a = [t for q, t in ours if halves.get(q) == half]
        b = [t for q, t in theirs if halves.get(q) == half]
        result[key] = stats.ks_pvalue(a, b) if a and b else None
    return result
