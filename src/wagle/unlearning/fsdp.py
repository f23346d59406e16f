"""Unlearning with the model sharded by FSDP2: what differs from one process or DDP.

Each process holds a chunk of every parameter (a DTensor, ``wagle.sharding``), and after the
backward pass a chunk of its gradient, reduce-scattered (averaged) over the processes. Masking
commutes with that: zeroing entries of the summed gradient is zeroing them in each chunk. So
the mechanism of ``wagle.unlearning.masking`` runs unchanged on the local chunks:

- the mask of each parameter is cut to the chunk this process holds, with the parameter's own
  placements (``mask_chunk``; any shard dim);
- the unselected gradient entries are zeroed in the local chunk once the step's reduce-scatter
  is done (the Trainer defers it to the last micro-batch), before clipping; clipping takes the
  global norm over every chunk (the Trainer's DTensor-aware clipping), so the norm of the
  selected entries;
- the masked weight decay and SelectiveAdamW (state for the local selected entries only) work
  on local chunks; dense-state AdamW works on the DTensors as they are;
- the checksums of the unselected entries are taken on every chunk with their global
  positions and summed over the processes (``checksum``): the number one process computes
  on the whole tensor, so ``verify`` checks the whole state before anything is saved.

Also here: a frozen copy of a sharded model (FSDP2 cannot be deep-copied; NPO's live
reference, the KL retain term and RMU need one), the whole model gathered on the main process
for saving (``gather_plain``), and the one-line refusals of what does not run sharded.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from wagle.errors import WagleError
from wagle.sharding import (
    Layout,
    adopt,
    all_reduce_sum_,
    counted_here,
    gather_on_main,
    is_main_process,
    is_sharded,
    layout_of,
    local,
    model_is_sharded,
    reshard,
)

is_sharded_model = model_is_sharded

INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
CHUNK = 1 << 22  # entries per checksum pass


def prepare(model: torch.nn.Module, config: Any) -> None:
    """Ready a sharded model for the Trainer (``wagle.sharding.adopt``), after checking that
    the run's options work sharded."""
    refuse_unsupported(lora=config.lora, save_every=config.save_every)
    adopt(reshard(model))


def refuse_unsupported(*, lora: bool, save_every: int) -> None:
    """One-line user errors for what does not run under FSDP2 (checked before loading)."""
    if lora:
        raise WagleError("lora is not supported with fsdp (adapters on sharded weights)")
    if save_every:
        raise WagleError(
            "save_every / --resume are not supported with fsdp: the Trainer does not checkpoint "
            "a model sharded at load time; leave save_every at 0"
        )


class _MaskFileOnce(Mapping[str, torch.Tensor]):
    """A mask file read one tensor at a time, the last one kept (the enforcer asks for the same
    tensor a few times in a row): a process never holds the whole mask, only its chunks."""

    def __init__(self, handle: Mapping[str, torch.Tensor]) -> None:
        self.handle, self.last = handle, ("", None)

    def __getitem__(self, name: str) -> torch.Tensor:
        if self.last[0] != name:
            self.last = (name, self.handle[name])
        return self.last[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self.handle)

    def __len__(self) -> int:
        return len(self.handle)


def open_mask_for(path: str, model: torch.nn.Module) -> Mapping[str, torch.Tensor]:
    """The mask file at ``path``, checked against the model's (global) shapes from its header,
    read lazily."""
    from wagle.attribution.masks import open_mask
    from wagle.attribution.masks.mask import check_shapes

    handle = open_mask(path)
    check_shapes(handle.shapes, model)
    return _MaskFileOnce(handle)


def mask_chunk(selected: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """The part of a whole-tensor mask that lies in this process's chunk of ``param``, on the
    chunk's device (the mask itself for a parameter that is not sharded)."""
    layout = layout_of(param)
    chunk = selected if layout is None else layout.cut(selected).contiguous()
    return chunk.to(local(param).device)


@torch.no_grad()
def checksum(param: torch.Tensor, selected: torch.Tensor | None) -> int:
    """An integer fingerprint of the bit patterns of the unselected entries (all, if None):
    Σ_j bits_j·(j mod 65521 + 1) over global flat positions j, in wrapping int64, so any single
    changed entry changes it. ``selected`` is the local chunk's mask. Sharded: each process
    sums its chunk and the sums are added over the processes (a collective), giving what one
    process computes on the whole tensor."""
    layout = layout_of(param)
    bits = local(param).detach().reshape(-1).view(INT_VIEW[param.element_size()])
    keep = None if selected is None else ~selected.reshape(-1)
    total = torch.zeros((), dtype=torch.int64, device=bits.device)
    for start in range(0, bits.numel(), CHUNK):
        chunk = bits[start : start + CHUNK].to(torch.int64)
        positions = torch.arange(start, start + chunk.numel(), device=bits.device)
        index = positions if layout is None else layout.flat_index(positions)
        term = chunk * (index % 65521 + 1)
        if keep is not None:
            term = term * keep[start : start + CHUNK]
        total += term.sum()
    return _sum_over_processes(int(total), layout) if layout is not None else int(total)


def _sum_over_processes(value: int, layout: Layout) -> int:
    """Σ of every process's ``value`` as wrapping int64: each process fills its own slot of a
    vector that is all-reduced (adding zeros never overflows), the slots are added here."""
    if not counted_here(layout):
        value = 0
    slots = torch.zeros(layout.mesh.size(), dtype=torch.int64)
    slots[layout.mesh.get_local_rank()] = value
    all_reduce_sum_(slots, layout.group)
    total = sum(int(v) for v in slots)
    return (total + 2**63) % 2**64 - 2**63


def plain_class(model: torch.nn.Module) -> type:
    """The model's own class (``fully_shard`` swaps in an ``FSDP<name>`` subclass)."""
    from torch.distributed.fsdp import FSDPModule

    return next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))


def _empty_twin(model: torch.nn.Module) -> torch.nn.Module:
    """A model of the same class and config with parameters on the meta device (buffers, such
    as rotary frequencies, computed as usual)."""
    from accelerate import init_empty_weights

    config = copy.deepcopy(model.config)
    config.__dict__.pop("distributed_config", None)
    with init_empty_weights(include_buffers=False):
        twin = plain_class(model)(config)
    return twin


@torch.no_grad()
def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy without gradients of a sharded model, sharded the same way (the same
    FSDP units, mesh and placements), holding the same chunks: each process copies its own."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    reshard(model)
    twin = _empty_twin(model)
    placements = {n: p.placements for n, p in model.named_parameters() if is_sharded(p)}
    name_of = {id(p): n for n, p in twin.named_parameters()}
    mesh = next(p.device_mesh for p in model.parameters() if is_sharded(p))

    def placement(param: torch.nn.Parameter):
        return placements.get(name_of[id(param)], (None,))[0]

    units = [n for n, m in model.named_modules() if isinstance(m, FSDPModule)]
    for name in sorted(units, key=lambda n: -n.count(".") if n else 1):  # inner units first
        module = twin.get_submodule(name) if name else twin
        fully_shard(module, mesh=mesh, shard_placement_fn=placement)
    twin.to_empty(device=local(next(model.parameters())).device)
    for (_, param), (_, kept) in zip(
        model.named_parameters(), twin.named_parameters(), strict=True
    ):
        local(kept).copy_(local(param))
    for (_, buffer), (_, kept) in zip(model.named_buffers(), twin.named_buffers(), strict=True):
        kept.copy_(buffer)
    twin.eval().requires_grad_(False)
    return twin


@torch.no_grad()
def whole_state(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The whole trainable tensors of a sharded model on the main process's CPU (``{}`` on the
    others; a collective); None for a model that is not sharded."""
    if not model_is_sharded(reshard(model)):
        return None
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    chunks = {n: local(p).detach() for n, p in params.items()}
    return gather_on_main(chunks, {n: layout_of(p) for n, p in params.items()})


@torch.no_grad()
def gather_plain(model: torch.nn.Module) -> torch.nn.Module | None:
    """The whole model as a plain (unsharded) one on the CPU of the main process, for saving
    with ``save_pretrained`` as a normal ``from_pretrained`` directory; None on the others.
    A collective: every process gathers one parameter at a time."""
    reshard(model)
    chunks = {n: local(p).detach() for n, p in model.named_parameters()}
    layouts = {n: layout_of(p) for n, p in model.named_parameters()}
    state = gather_on_main(chunks, layouts)
    if not is_main_process():
        return None
    twin = _empty_twin(model)
    state |= {n: b.detach().cpu() for n, b in model.named_buffers()}
    twin.load_state_dict(state, strict=False, assign=True)
    twin.tie_weights()
    if missing := [n for n, p in twin.named_parameters() if p.is_meta]:
        raise WagleError(f"gathering the sharded model left {missing[0]} unset")
    return twin.train(model.training)
