"""Forget/retain pairing: seeded, refreshed each epoch, and checked when a batch is built."""

from __future__ import annotations

import pytest
import torch

from wagle.unlearning import ForgetRetainBatch, PairCollator, PairedDataset


def _examples(n: int, offset: int) -> list[dict[str, list[int]]]:
    return [{"input_ids": [offset + i, 5], "labels": [-100, 5]} for i in range(n)]


def _epoch(data: PairedDataset) -> list[int]:
    return [data[i]["retain"]["input_ids"][0] for i in range(len(data))]


def test_pairing_is_seeded():
    first = _epoch(PairedDataset(_examples(20, 0), _examples(50, 100), seed=3))
    assert first == _epoch(PairedDataset(_examples(20, 0), _examples(50, 100), seed=3))
    assert first != _epoch(PairedDataset(_examples(20, 0), _examples(50, 100), seed=4))


def test_each_epoch_draws_fresh_retain_samples():
    data = PairedDataset(_examples(20, 0), _examples(50, 100), seed=0)
    assert _epoch(data) != _epoch(data)


def test_collator_pads_halves_separately_and_keeps_indices():
    data = PairedDataset([{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}], _examples(1, 9))
    inputs = PairCollator(pad_token_id=0)([data[0]])
    batch = ForgetRetainBatch.from_inputs(inputs)
    assert batch.forget["input_ids"].shape == (1, 3) and batch.retain["input_ids"].shape == (1, 2)
    assert batch.forget_index.tolist() == [0]


def test_batch_sizes_must_agree():
    one = {"input_ids": torch.zeros(1, 2, dtype=torch.long)}
    two = {"input_ids": torch.zeros(2, 2, dtype=torch.long)}
    with pytest.raises(ValueError, match="batch sizes differ"):
        ForgetRetainBatch(one, two, torch.tensor([0]))
