"""FSDP2 parameters seen through their local shards.

FSDP2 (``torch.distributed.fsdp.fully_shard``) turns each parameter into a DTensor: a global
shape, a device mesh over the processes and a placement per mesh dimension. wagle supports a
1-D mesh with ``Shard(d)`` on any dim d (as ``torch.chunk`` splits it: process r holds chunk
r of ``ceil(n / W)`` entries along d; the last chunks may be shorter or empty) and ``Replicate``.
The dim is read from each parameter, never assumed to be 0.

Everything wagle does per weight entry (gradient sums, scores, masks, zeroing, decay, Adam) is
elementwise, so it runs on the local chunk (``local``); what needs the other processes is
counting (exact top-k selection), checksums and writing whole tensors (masks, the model).
``Layout`` holds what those need: where the local chunk sits in the global tensor.

``load_sharded`` / ``distributed_config``: models are sharded at load time by transformers
(``from_pretrained(distributed_config=DistributedConfig(fsdp_size=W))``: each process reads only
its shards), the path the HF Trainer runs without wrapping the model again. ``adopt`` lets a
model that the caller sharded with ``fully_shard`` (any placements) take the same path.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Replicate, Shard

from wagle.errors import WagleError

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def is_sharded(t: torch.Tensor) -> bool:
    """Whether ``t`` is a DTensor (an FSDP2 parameter, its gradient, or a tensor like them)."""
    return isinstance(t, DTensor)


def local(t: torch.Tensor) -> torch.Tensor:
    """The local chunk of a DTensor (a view: in-place changes reach the DTensor), else ``t``."""
    return t.to_local() if isinstance(t, DTensor) else t


def is_main_process() -> bool:
    """The first process of the run (or the only one)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier() -> None:
    """Wait for every process (a no-op in a single process)."""
    if dist.is_initialized():
        dist.barrier()


def model_is_sharded(model: torch.nn.Module) -> bool:
    return any(isinstance(p, DTensor) for p in model.parameters())


def reshard(model: torch.nn.Module) -> torch.nn.Module:
    """Every FSDP2 unit of ``model`` back in its sharded state, its parameters the DTensors.

    A forward without backward (``no_grad``: a reference pass, an evaluation) leaves the units
    built with ``reshard_after_forward=False`` (transformers' LM-head unit, FSDP2's root)
    holding their whole parameters, and ``named_parameters`` then returns those temporary
    tensors: an optimizer built on them, or a copy taken of them, would miss the real ones.
    Call this before reading a sharded model's parameters after such a pass.
    """
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()
    return model


@dataclass(frozen=True)
class Layout:
    """Where this process's chunk of a sharded tensor sits: global ``shape``, the chunk's
    ``local_shape`` and ``offset`` (global index of its first entry, per dim), the mesh."""

    shape: tuple[int, ...]
    local_shape: tuple[int, ...]
    offset: tuple[int, ...]
    mesh: object  # DeviceMesh
    placements: tuple

    @property
    def group(self) -> dist.ProcessGroup:
        return self.mesh.get_group()

    def cut(self, full: torch.Tensor) -> torch.Tensor:
        """This process's chunk of ``full`` (a tensor of the global shape, or broadcastable
        views of one): a view, no copy."""
        return full[
            tuple(slice(o, o + n) for o, n in zip(self.offset, self.local_shape, strict=True))
        ]

    def flat_index(self, positions: torch.Tensor) -> torch.Tensor:
        """Global flat indices (int64) of local flat ``positions`` (int64 [k])."""
        index, rest = torch.zeros_like(positions), positions
        if positions.numel() == 0:
            return index
        strides = _strides(self.shape)
        for dim in reversed(range(len(self.shape))):  # unravel the local index, last dim first
            size = self.local_shape[dim]
            index += (rest % size + self.offset[dim]) * strides[dim]
            rest = rest // size
        return index

    def full(self, chunk: torch.Tensor) -> torch.Tensor:
        """The whole tensor from every process's chunk (a collective: all processes call it)."""
        spread = DTensor.from_local(
            chunk.contiguous(), self.mesh, self.placements, shape=self.shape,
            stride=_strides(self.shape),
        )  # fmt: skip
        return spread.full_tensor()


def layout_of(param: torch.Tensor) -> Layout | None:
    """The layout of a sharded parameter (None for a plain tensor), read from its placements."""
    if not isinstance(param, DTensor):
        return None
    mesh, placements = param.device_mesh, tuple(param.placements)
    if mesh.ndim != 1:
        raise WagleError(
            f"sharded parameters need a 1-D device mesh (FSDP2 without HSDP); got a {mesh.ndim}-D one"
        )
    shape = tuple(param.shape)
    local_shape, offset = list(shape), [0] * len(shape)
    placement = placements[0]
    if isinstance(placement, Shard):
        dim, world, rank = placement.dim, mesh.size(), mesh.get_local_rank()
        size = math.ceil(shape[dim] / world)  # torch.chunk's chunk length
        offset[dim] = min(rank * size, shape[dim])
        local_shape[dim] = min(size, shape[dim] - offset[dim])
    elif not isinstance(placement, Replicate):
        raise WagleError(f"unsupported placement {placement} of a sharded parameter")
    if tuple(local_shape) != tuple(param.to_local().shape):
        raise WagleError(f"unexpected local shape {tuple(param.to_local().shape)} for {placement}")
    return Layout(shape, tuple(local_shape), tuple(offset), mesh, placements)


def counted_here(layout: Layout | None) -> bool:
    """Whether this process counts a tensor's entries in a sum over all processes: a chunk of a
    sharded one always; a whole (replicated) one only on the first process."""
    if layout is not None and isinstance(layout.placements[0], Shard):
        return True
    return is_main_process()


def all_reduce_sum_(t: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Sum ``t`` over the processes in place, through the backend's device (NCCL: cuda)."""
    if not dist.is_initialized():
        return t
    device = "cuda" if dist.get_backend(group) == "nccl" else "cpu"
    buffer = t.to(device)
    dist.all_reduce(buffer, group=group)
    t.copy_(buffer)
    return t


def gather_on_main(
    chunks: dict[str, torch.Tensor], layouts: dict[str, Layout | None]
) -> dict[str, torch.Tensor]:
    """Whole tensors (on CPU) on the first process, from every process's chunks; ``{}`` on the
    others. A collective: every process calls it with the same names in the same order; one
    whole tensor at a time is in flight."""
    main = is_main_process()
    whole: dict[str, torch.Tensor] = {}
    for name, chunk in chunks.items():
        layout = layouts.get(name)
        if layout is not None:
            flag = chunk.dtype == torch.bool  # sent as bytes: not every backend sends bool
            sent = chunk.to(layout.mesh.device_type, torch.uint8 if flag else chunk.dtype)
            chunk = layout.full(sent)
            chunk = chunk.bool() if flag else chunk
        if main:
            whole[name] = chunk.cpu()
    return whole


def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides of a contiguous tensor of ``shape``."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


# ---- loading a model sharded with FSDP2 ----------------------------------------------------


def distributed_config(config: PretrainedConfig | None = None):
    """FSDP2 over every process of the run (``WORLD_SIZE``), for ``from_pretrained`` of a model
    of ``config`` (loaded by ``wagle.models``, where every load lives).

    The LM head is freed after forward like the decoder layers: transformers keeps it whole
    from forward to backward, grouped with the final norm, and on torch 2.13 a step with two
    forwards whose loss reaches the final norm but not the head (RMU steering the last layer)
    crashed in backward (a segfault; 2 CPU processes). Freeing it costs one more gather of
    the head per micro-batch."""
    from transformers.distributed import DistributedConfig

    world = int(os.environ.get("WORLD_SIZE", "1"))
    plan = None
    if config is not None and _head_kept_whole(config):
        plan = {"lm_head": "free_full_weight"}
    return DistributedConfig(fsdp_size=world, fsdp_plan=plan)


def _head_kept_whole(config: PretrainedConfig) -> bool:
    """Whether the model class's FSDP2 plan keeps ``lm_head`` whole after forward."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except KeyError:  # remote code: its own plan, left as it is
        return False
    return (getattr(model_class, "_fsdp_plan", None) or {}).get("lm_head") == "keep_full_weight"


def adopt(model: torch.nn.Module) -> torch.nn.Module:
    """Mark a model that the caller sharded with ``fully_shard`` the way transformers marks one
    it sharded at load time, so that the Trainer neither wraps it in DDP nor shards it again,
    defers the reduce-scatter during gradient accumulation, and ``save_pretrained`` gathers
    the whole weights. A model loaded with ``distributed_config`` is returned as it is."""
    if getattr(model, "is_distributed_loading_by_transformers", False):
        return model
    if not model_is_sharded(model):
        raise WagleError("the model has no sharded (FSDP2) parameter")
    from transformers.distributed import DistributedConfig

    world = next(p for p in model.parameters() if isinstance(p, DTensor)).device_mesh.size()
    model.config.distributed_config = DistributedConfig(fsdp_size=world)
    model._is_distributed_loading_by_transformers = True
    model._is_fsdp_managed_module = True  # generation: every process steps together
    return model
