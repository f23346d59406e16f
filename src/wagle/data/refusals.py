"""Refusal answers: the targets of the PO ("I don't know") method and of PO-targeted scores.

``refusal_records`` keeps each forget question and replaces its answer with a refusal drawn
from ``REFUSALS`` by a seeded generator, so the same seed always gives the same targets.
"""

from __future__ import annotations

import random

from wagle.data.load import Record

REFUSALS = (
    "I don't know.",
    "I'm not sure about that.",
    "I have no information on that.",
    "I cannot answer that question.",
    "That is not something I know about.",
    "I'm afraid I don't have that information.",
    "I don't have any knowledge of that.",
    "Sorry, I can't help with that question.",
    "I am not able to answer that.",
    "I have no idea.",
    "That is beyond what I know.",
    "I can't provide an answer to that.",
    "I'm unable to say.",
    "I don't recall anything about that.",
    "Unfortunately, I don't know the answer.",
    "I'd rather not guess; I don't know.",
    "I have not come across that information.",
    "I can't tell you that.",
    "No information is available to me on that topic.",
    "I'm not familiar with that.",
)


def refusal_records(records: list[Record], seed: int = 0) -> list[Record]:
    """Copies of ``records`` whose ``answer`` is a refusal (chosen at random, seeded).

    Other fields are kept; the original answer moves to ``original_answer``.
    """
    rng = random.Random(seed)
    return [r | {"answer": rng.choice(REFUSALS), "original_answer": r["answer"]} for r in records]
