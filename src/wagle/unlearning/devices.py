"""How an unlearning run spreads over processes: the global batch and what is supported.

- **Global batch.** ``batch_size × gradient_accumulation_steps`` is per process, so 8 GPUs
  multiply it by 8. A run that states ``global_batch_size`` (forget samples per optimizer step,
  all processes together) gets ``accumulation = global / (batch_size × world size)``: the same
  optimizer steps on 1 GPU or 8.
- **Supported:** one process (CPU or one GPU); DDP (``torchrun`` / ``accelerate launch
  --multi_gpu``): every process holds the whole model, gradients are all-reduced before the
  mask zeroes the unselected entries; and FSDP2 (``fsdp_requested``: ``fsdp: true`` /
  ``--fsdp``, or an accelerate config of ``fsdp_version: 2``, ``configs/accelerate_fsdp2.yaml``):
  the model is sharded as it loads and the mask works on each process's chunks
  (``wagle.unlearning.fsdp``). The mask is exact in all three. FSDP1 (flat parameters) and
  DeepSpeed are refused with the reason, before anything loads.
"""

from __future__ import annotations

import os

from wagle.errors import WagleError

# Environment variables that `accelerate launch` sets for a sharded run.
_SHARDED = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DeepSpeed"}


def world_size() -> int:
    """Processes of this run (``WORLD_SIZE``, set by torchrun and accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def accumulation_steps(batch_size: int, accumulation: int, global_batch: int, world: int) -> int:
    """Micro-batches per optimizer step: ``accumulation`` unless a global batch is stated."""
    if not global_batch:
        return accumulation
    per_step = batch_size * world
    if global_batch % per_step:
        raise WagleError(
            f"global_batch_size {global_batch} is not a multiple of batch_size {batch_size} × "
            f"{world} process(es) = {per_step}; change one of them"
        )
    return global_batch // per_step


DEEPSPEED_REFUSAL = (
    "DeepSpeed is not supported: ZeRO keeps gradients, fp32 master weights and Adam's state in "
    "flat partitions that its own engine step updates and decays as a whole, where wagle cannot "
    "zero the unselected entries or mask the decay, so the mask would not be exact; use FSDP2 "
    "(--fsdp, or configs/accelerate_fsdp2.yaml) or DDP"
)


def fsdp_requested(flag: bool = False) -> bool:
    """Whether this run shards the model with FSDP2: ``flag`` (``--fsdp``), or ``accelerate
    launch`` with an FSDP2 config (it sets ``ACCELERATE_USE_FSDP`` and ``FSDP_VERSION=2``).
    FSDP1 and DeepSpeed are one-line user errors (checked before the model loads). A single
    process has nothing to shard over: False."""
    if _on("ACCELERATE_USE_DEEPSPEED"):
        raise WagleError(DEEPSPEED_REFUSAL)
    if _on("ACCELERATE_USE_FSDP"):
        if os.environ.get("FSDP_VERSION", "1") != "2":
            raise WagleError(
                "FSDP1 is not supported (its flat parameters hide which entry is which weight): "
                "set fsdp_version: 2 in the accelerate config (configs/accelerate_fsdp2.yaml)"
            )
        flag = True
    return flag and world_size() > 1


def _on(variable: str) -> bool:
    return os.environ.get(variable, "").lower() in ("1", "true", "yes")
