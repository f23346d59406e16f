"""The QA prompt format shared by training, attribution, unlearning and evaluation.

A QA sample is ``PROMPT_TEMPLATE.format(question=...)`` followed by `` <answer><eos>``. Prompt
and answer are tokenised separately and concatenated, so the answer tokens (the only labelled
ones) are exactly the tokens a model generates after the prompt.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

PROMPT_TEMPLATE = "Question: {question}\nAnswer:"
IGNORE_INDEX = -100  # the label value that torch's cross-entropy skips


def format_prompt(question: str) -> str:
    return PROMPT_TEMPLATE.format(question=question)


def encode_qa(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    answer: str,
    max_length: int = 512,
    *,
    eos: bool = True,
) -> dict[str, list[int]]:
    """Token ids of prompt + answer (+ eos); labels are -100 on the prompt, so loss = answer NLL.

    The answer is truncated (never the prompt) when the sample exceeds ``max_length``.
    ``eos=False`` scores the answer as a continuation (multiple-choice options).
    """
    prompt_ids = prompt_token_ids(tokenizer, question)
    answer_ids = tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
    answer_ids = answer_ids + [tokenizer.eos_token_id] * eos
    answer_ids = answer_ids[: max(1, max_length - len(prompt_ids))]
    return {
        "input_ids": prompt_ids + answer_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids,
    }


def encode_text(
    tokenizer: PreTrainedTokenizerBase, text: str, max_length: int = 512
) -> dict[str, list[int]]:
    """Token ids of a raw text; every token is labelled."""
    ids = tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_length)
    return {"input_ids": ids["input_ids"], "labels": list(ids["input_ids"])}


def prompt_token_ids(tokenizer: PreTrainedTokenizerBase, question: str) -> list[int]:
    """The prompt's ids, with the tokenizer's BOS token if it uses one."""
    return tokenizer(format_prompt(question), add_special_tokens=True)["input_ids"]
