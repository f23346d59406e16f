"""How an unlearning run spreads over processes: the global batch and what is supported.

- **Global batch.** ``batch_size × gradient_accumulation_steps`` is per process, so 8 GPUs
  multiply it by 8. A run that states ``global_batch_size`` (forget samples per optimizer step,
  all processes together) gets ``accumulation = global / (batch_size × world size)``: the same
  optimizer steps on 1 GPU or 8.
- **Supported:** one process (CPU or one GPU) and DDP (``torchrun`` / ``accelerate launch
  --multi_gpu``): every process holds the whole model, gradients are all-reduced before the mask
  zeroes the unselected entries, and the mask is exact. FSDP and DeepSpeed shard gradients and
  optimizer state, where that zeroing does not hold: they are refused before anything loads.
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


def refuse_sharded_training() -> None:
    """A one-line user error under FSDP or DeepSpeed (checked before the model loads)."""
    for variable, name in _SHARDED.items():
        if os.environ.get(variable, "").lower() in ("1", "true", "yes"):
            raise WagleError(
                f"{name} is not supported: the mask is exact with one process or DDP "
                "(torchrun, accelerate launch --multi_gpu); for less memory per device use "
                "--gradient-checkpointing or --optimizer-state selected (see wagle plan)"
            )
