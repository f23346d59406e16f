"""One process decides, every process follows: the few collectives an unlearning run needs
beyond DDP's gradients (torchrun / accelerate launch; each is a no-op in a single process).

The trajectory (``wagle.unlearning.trajectory``) evaluates on the main process only and hands
its outcome to the others with ``from_main``, so that every process takes the same decision
(stop, which point is selected) from the same numbers, and none waits in a collective that
another skipped. The selected weights are kept by the main process alone and handed to the
others with ``weights_from_main`` when training ends.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from wagle.sharding import is_main_process


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def from_main(value: Any) -> Any:
    """The main process's ``value`` (any picklable object) on every process."""
    if not distributed():
        return value
    holder = [value if is_main_process() else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


@torch.no_grad()
def weights_from_main(params: list[torch.Tensor]) -> None:
    """Overwrite ``params`` on every process with the main process's values, in place."""
    if distributed():
        for param in params:
            dist.broadcast(param.data, src=0)
