"""Which batches each process runs in a pass over data (attribution's statistics).

One process, or whole models on each (DDP-style): process r takes samples r, r + W, ... in
batches of ``batch_size``; the processes never wait for each other inside a pass.
Sharded model (FSDP2): every forward and backward is a collective, so all processes run the
same number of steps: shorter shares are padded with label-free fillers (their gradient is
exactly zero). ``per_sample``: the steps hold one sample over all processes together (sample
i on process i mod W, fillers elsewhere), for sums of per-sample squared gradients.
"""

from __future__ import annotations

from wagle.data.prompt import IGNORE_INDEX

Examples = list[dict[str, list[int]]]
Step = tuple[Examples, bool]  # (a batch's examples, whether it counts: False = label-free filler)


def schedule(
    examples: Examples,
    batch_size: int,
    *,
    rank: int,
    world: int,
    sharded: bool,
    per_sample: bool = False,
) -> list[Step]:
    """This process's batches: its share (samples rank, rank + W, ...) in batches; sharded,
    padded with label-free fillers to the longest share (process 0's); ``per_sample``
    (sharded): sample i on process i mod W, one sample per step over all processes."""
    if sharded and per_sample:
        return [([e], True) if i % world == rank else _filler(e) for i, e in enumerate(examples)]
    share = examples[rank::world]
    steps = [(share[i : i + batch_size], True) for i in range(0, len(share), batch_size)]
    if sharded:
        longest = -(-len(examples[0::world]) // batch_size)
        steps += [_filler(examples[0])] * (longest - len(steps))
    return steps


def _filler(example: dict[str, list[int]]) -> Step:
    """Two tokens, no label: a forward and backward that add exactly nothing."""
    return [{"input_ids": example["input_ids"][:2], "labels": [IGNORE_INDEX] * 2}], False
