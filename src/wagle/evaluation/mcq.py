"""Multiple-choice accuracy (WMDP / MMLU format: ``question``, ``choices``, ``answer`` index).

Every choice is scored by the model's summed log-likelihood of a continuation after the QA
prompt; the prediction is the arg-max (first choice on ties). Two prompt styles:

- ``letters`` (WMDP / MMLU as in lm-evaluation-harness): the choices are listed in the prompt
  as ``A. …``, ``B. …`` and the continuations are the letters `` A``, `` B``, ….
- ``text``: the prompt is the question alone and the continuations are the choice texts (for
  models that never saw the lettered format, such as the playground's).

No EOS is appended to a continuation: only the choice itself is scored.
"""

from __future__ import annotations

import string
from collections.abc import Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.data.load import Record
from wagle.errors import WagleError
from wagle.evaluation.answer_sets import AnswerSets
from wagle.evaluation.metrics import MetricResult
from wagle.registry import lookup, register

Style = Callable[[Record], tuple[str, list[str]]]
CHOICE_STYLES: dict[str, Style] = {}


@register(CHOICE_STYLES, "letters")
def letters(record: Record) -> tuple[str, list[str]]:
    """(question with the lettered choices, the letters)."""
    tags = string.ascii_uppercase[: len(record["choices"])]
    listing = "\n".join(
        f"{tag}. {choice}" for tag, choice in zip(tags, record["choices"], strict=True)
    )
    return f"{record['question']}\n{listing}", list(tags)


@register(CHOICE_STYLES, "text")
def text(record: Record) -> tuple[str, list[str]]:
    """(the question, the choice texts)."""
    return record["question"], list(record["choices"])


def mcq_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Record],
    *,
    style: str = "letters",
    batch_size: int = 32,
) -> tuple[MetricResult, list[int]]:
    """(accuracy with per-sample 0/1 correctness, predicted choice index per record)."""
    make = lookup(CHOICE_STYLES, style, "multiple-choice style")
    if style == "letters" and any(len(r["choices"]) > 26 for r in records):
        raise WagleError("the 'letters' style allows at most 26 choices")
    questions, continuations = zip(*(make(record) for record in records), strict=True)
    choices = AnswerSets(
        tokenizer, list(questions), list(continuations), batch_size=batch_size, eos=False
    )  # the prompt (with a listing of the choices) is computed once per question
    predictions = [int(torch.argmin(nll)) for nll in choices.summed_nll(model)]
    correct = [float(p == r["answer"]) for p, r in zip(predictions, records, strict=True)]
    return MetricResult(sum(correct) / len(correct), correct), predictions
