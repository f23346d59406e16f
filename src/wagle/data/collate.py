"""Padding encoded samples into a batch of tensors."""

from __future__ import annotations

import torch

from wagle.data.prompt import IGNORE_INDEX


def collate(
    examples: list[dict[str, list[int]]], pad_token_id: int, padding_side: str = "right"
) -> dict[str, torch.Tensor]:
    """Pad ``input_ids`` (and ``labels`` if present) to the longest example.

    Returns ``input_ids`` and ``attention_mask`` [B, T] and, when the examples carry labels,
    ``labels`` [B, T] with -100 on padding. Left padding is for generation.
    """
    width = max(len(e["input_ids"]) for e in examples)
    keys = [("input_ids", pad_token_id)] + (
        [("labels", IGNORE_INDEX)] if "labels" in examples[0] else []
    )
    out: dict[str, list[list[int]]] = {key: [] for key, _ in keys} | {"attention_mask": []}
    for e in examples:
        gap = width - len(e["input_ids"])
        for key, fill in keys:
            out[key].append(_pad(e[key], gap, fill, padding_side))
        out["attention_mask"].append(_pad([1] * len(e["input_ids"]), gap, 0, padding_side))
    return {key: torch.tensor(value, dtype=torch.long) for key, value in out.items()}


def _pad(values: list[int], gap: int, fill: int, side: str) -> list[int]:
    return values + [fill] * gap if side == "right" else [fill] * gap + values
