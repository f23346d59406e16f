"""Records → encoded examples → padded batches, the input of every pass over data."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from transformers import PreTrainedTokenizerBase

from wagle.data.collate import collate
from wagle.data.load import Record
from wagle.data.prompt import IGNORE_INDEX, encode_qa, encode_text
from wagle.errors import WagleError
from wagle.validate import warn


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
    text = bool(records) and isinstance(records[0], str)

    def encode(record, limit: int) -> dict[str, list[int]]:
        if text:
            return encode_text(tokenizer, record, limit)
        return encode_qa(tokenizer, record["question"], record[answer_key], limit)

    examples = [encode(r, max_length) for r in records]
    # A cut sample is at least max_length long: only those are encoded again, uncut.
    cut = sum(
        len(encode(r, 1 << 30)["input_ids"]) > len(e["input_ids"])
        for r, e in zip(records, examples, strict=True)
        if len(e["input_ids"]) >= max_length
    )
    check_not_cut_away(examples, max_length, text)
    warn_truncated(cut, len(examples), max_length)
    return examples


def check_not_cut_away(examples: list[dict[str, list[int]]], max_length: int, text: bool) -> None:
    """A user error when ``max_length`` leaves a sample no token to train on or score (its
    prompt alone is that long, or a text is cut to one token): such a sample contributes a
    constant to every loss (NPO: 2/β·ln 2 per sample) and nothing to a metric."""
    bare = [e for e in examples if all(y == IGNORE_INDEX for y in e["labels"][1:])]
    if not bare:
        return
    if text:
        detail = "a text needs two tokens, one to predict"
    else:
        longest = max(e["labels"].count(IGNORE_INDEX) for e in bare)
        detail = f"their prompts alone take up to {longest} tokens"
    raise WagleError(
        f"max_length={max_length} leaves {len(bare)} of {len(examples)} samples without a "
        f"token to train on or score ({detail}): raise --max-length"
    )


def warn_truncated(cut: int, total: int, max_length: int) -> None:
    """One warning, with the count, when encoding cut samples to ``max_length``."""
    if cut:
        warn(
            f"{cut} of {total} samples are longer than max_length={max_length} tokens "
            "and were truncated"
        )


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
