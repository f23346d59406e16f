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


def test_collator_pads_a_methods_companions_at_the_forget_indices():
    """IdkDPO's refusals ride with the batch: row r holds the companion of forget sample
    index[r], padded like the forget half (0 ids, -100 labels)."""
    data = PairedDataset(_examples(3, 0), _examples(3, 9))
    refusals = [{"input_ids": [7] * (i + 1), "labels": [-100] + [7] * i} for i in range(3)]
    inputs = PairCollator(0, {"refusals": refusals})([data[2], data[0]])
    batch = ForgetRetainBatch.from_inputs(inputs)
    assert batch.companions["refusals"]["input_ids"].tolist() == [[7, 7, 7], [7, 0, 0]]
    assert batch.companions["refusals"]["labels"].tolist() == [[-100, 7, 7], [-100, -100, -100]]


def test_batch_sizes_must_agree():
    one = {"input_ids": torch.zeros(1, 2, dtype=torch.long)}
    two = {"input_ids": torch.zeros(2, 2, dtype=torch.long)}
    with pytest.raises(ValueError, match="batch sizes differ"):
        ForgetRetainBatch(one, two, torch.tensor([0]))


class _Recording(PairCollator):
    """The collator of a real run, noting (forget index, retain sample) of every pair."""

    def __init__(self, pad_token_id: int) -> None:
        super().__init__(pad_token_id)
        self.pairs: list[tuple[int, int]] = []

    def __call__(self, items):
        self.pairs += [(i["index"], i["retain"]["input_ids"][0]) for i in items]
        return super().__call__(items)


def test_a_trainer_run_pairs_each_forget_sample_afresh_every_epoch(tiny_model, tmp_path):
    """Three epochs of a real Trainer run over 6 forget samples: each is served once per
    epoch, and its k-th retain partner is the seeded k-th draw random.Random("0:i:k")."""
    import random

    from wagle.unlearning import METHODS, MaskedUnlearningTrainer, UnlearnConfig
    from wagle.unlearning.run import training_arguments

    forget, retain = _examples(6, 0), _examples(50, 100)
    data = PairedDataset(forget, retain, seed=0)
    collator = _Recording(pad_token_id=0)
    config = UnlearnConfig(
        model="-", forget="-", retain="-", out="-", epochs=3, batch_size=2,
        gradient_accumulation_steps=1, warmup=0, progress=False, method="graddiff",
    )  # fmt: skip
    trainer = MaskedUnlearningTrainer(
        model=tiny_model(),
        args=training_arguments(config, str(tmp_path)),
        train_dataset=data,
        data_collator=collator,
        objective=METHODS["graddiff"](),
    )
    trainer.train()
    served: dict[int, list[int]] = {}
    for index, partner in collator.pairs:
        served.setdefault(index, []).append(partner)
    assert sorted(served) == list(range(6))
    for index, partners in served.items():
        expected = [100 + random.Random(f"0:{index}:{k}").randrange(50) for k in range(3)]
        assert partners == expected, index
    assert sum(len(set(p)) > 1 for p in served.values()) >= 5  # fresh partners, not one reused
