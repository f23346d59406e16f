"""Forget/retain pairs: the unit every unlearning objective consumes.

Each forget sample is paired with one retain sample drawn by a seeded generator; the draw
depends on (seed, forget index, how often that index was served), so every epoch sees fresh
retain samples and two runs with one seed see the same ones — on any number of processes,
because each forget index is served by exactly one process per epoch. The Trainer calls
``set_epoch(e)`` at each epoch's start, which makes every index's next draw its e-th: a run
resumed mid-epoch (whose skipped batches are never fetched) pairs exactly as an uninterrupted one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from wagle.data.collate import collate

Example = dict[str, list[int]]


@dataclass(frozen=True)
class ForgetRetainBatch:
    """Padded forget and retain batches of equal size B and the forget samples' indices.

    ``forget`` and ``retain`` hold ``input_ids``, ``attention_mask``, ``labels`` [B, T];
    ``forget_index`` [B] indexes the forget set (for per-sample values computed before
    training, such as NPO's reference NLL); ``companions`` holds, padded alike, the method's
    own examples paired with these forget samples (IdkDPO's refusals: ``PairCollator``).
    """

    forget: dict[str, torch.Tensor]
    retain: dict[str, torch.Tensor]
    forget_index: torch.Tensor
    companions: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {self.forget["input_ids"].shape[0], self.retain["input_ids"].shape[0]}
        if len(sizes | {self.forget_index.shape[0]}) != 1:
            raise ValueError(f"forget, retain and index batch sizes differ: {sizes}")

    @classmethod
    def from_inputs(cls, inputs: dict[str, Any]) -> ForgetRetainBatch:
        """From the nested mapping the collator returns (the Trainer moves mappings to device)."""
        companions = inputs.get("companions", {})
        return cls(inputs["forget"], inputs["retain"], inputs["forget_index"], companions)


class PairedDataset(Dataset):
    """Item i: forget example i, a retain example drawn for it, and i."""

    def __init__(self, forget: list[Example], retain: list[Example], seed: int = 0) -> None:
        if not forget or not retain:
            raise ValueError("forget and retain sets must both be non-empty")
        self.forget, self.retain, self.seed = forget, retain, seed
        self._served = [0] * len(forget)

    def __len__(self) -> int:
        return len(self.forget)

    def set_epoch(self, epoch: int) -> None:
        """Every index's next draw is its ``epoch``-th (each index is served once per epoch)."""
        self._served = [epoch] * len(self.forget)

    def __getitem__(self, index: int) -> dict[str, Any]:
        draw = random.Random(f"{self.seed}:{index}:{self._served[index]}")
        self._served[index] += 1
        return {
            "forget": self.forget[index],
            "retain": self.retain[draw.randrange(len(self.retain))],
            "index": index,
        }


class PairCollator:
    """Pads the forget and retain halves of a list of pairs separately (right padding), and
    each of ``companions`` (``Objective.companions``: examples indexed like the forget set)
    at the pairs' forget indices. Collated here, on the host, they reach the device with the
    batch: a method that looked them up by ``forget_index`` during the step would wait for
    the device to read it back."""

    def __init__(self, pad_token_id: int, companions: dict[str, list[Example]] | None = None):
        self.pad_token_id = pad_token_id
        self.companions = companions or {}

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        index = [i["index"] for i in items]
        batch = {
            "forget": collate([i["forget"] for i in items], self.pad_token_id),
            "retain": collate([i["retain"] for i in items], self.pad_token_id),
            "forget_index": torch.tensor(index, dtype=torch.long),
        }
        if self.companions:
            batch["companions"] = {
                name: collate([examples[i] for i in index], self.pad_token_id)
                for name, examples in self.companions.items()
            }
        return batch
