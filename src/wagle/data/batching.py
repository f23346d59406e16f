"""Records → encoded examples → padded batches, the input of every pass over data."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from transformers import PreTrainedTokenizerBase

from wagle.data.collate import collate
from wagle.data.load import Record
from wagle.data.prompt import encode_qa, encode_text


def encode_records(
    tokenizer: PreTrainedTokenizerBase,
    records: list[Record] | list[str],
    *,
    answer_key: str = "answer",
    max_length: int = 512,
) -> list[dict[str, list[int]]]:
    """QA records (labels on ``answer_key`` tokens only) or raw texts (all tokens labelled).

    ``answer_key`` picks which answer is the target, e.g. ``paraphrased_answer``; the refusal
    (PO) method passes records whose ``answer`` is a refusal.
    """
    if records and isinstance(records[0], str):
        return [encode_text(tokenizer, text, max_length) for text in records]
    return [encode_qa(tokenizer, r["question"], r[answer_key], max_length) for r in records]


def iter_batches(
    examples: list[dict[str, list[int]]],
    batch_size: int,
    pad_token_id: int,
    device: torch.device | str = "cpu",
) -> Iterator[dict[str, torch.Tensor]]:
    """Right-padded batches in order (no shuffling: passes over data are deterministic)."""
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], pad_token_id)
        yield {key: value.to(device) for key, value in batch.items()}
