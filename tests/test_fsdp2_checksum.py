"""The exactness check under FSDP2 (two CPU processes, gloo): the checksum of the unselected
entries, each process summing its own chunk at the entries' global positions, equals the one
computed on the whole tensor in one process; and an unselected entry changed in one process's
chunk alone makes ``MaskEnforcer.verify`` raise on every process (the sums are a collective)."""

from __future__ import annotations

SCRIPT = """
import sys, torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Shard
from wagle.errors import WagleError
from wagle.sharding import local
from wagle.unlearning.fsdp import checksum
from wagle.unlearning.masking import MaskEnforcer

torch.manual_seed(0)
# the first layer's weight sharded on its columns (dim 1: 3 and 3; FSDP2 wants it even there),
# its bias and the second layer on rows, unevenly (5 rows: 3 and 2; 3 rows: 2 and 1)
model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Linear(5, 3))
generator = torch.Generator().manual_seed(1)
mask = {n: torch.rand(p.shape, generator=generator) < 0.5 for n, p in model.named_parameters()}
whole = {n: checksum(p.detach().clone(), mask[n]) for n, p in model.named_parameters()}

mesh = init_device_mesh("cpu", (2,))
fully_shard(model[0], mesh=mesh, shard_placement_fn=lambda p: Shard(1) if p.dim() == 2 else Shard(0))
fully_shard(model, mesh=mesh)
enforcer = MaskEnforcer(model, mask)
assert set(enforcer.partial) == set(whole)
for name, (param, selected) in enforcer.partial.items():  # the chunk and its mask chunk
    assert checksum(param, selected) == whole[name], (name, checksum(param, selected), whole[name])
enforcer.verify()  # nothing moved: no error

param, selected = enforcer.partial["0.weight"]
if dist.get_rank() == 1:  # one unselected entry of rank 1's chunk (columns 3-5)
    position = (~selected).reshape(-1).nonzero()[0]
    with torch.no_grad():
        local(param).reshape(-1)[position] += 1.0
try:
    enforcer.verify()
except WagleError as error:
    assert "1 parameter" in str(error), error
else:
    raise AssertionError(f"rank {dist.get_rank()}: verify missed the changed entry")
"""


def test_sharded_checksums_equal_one_process_and_catch_a_change_in_one_chunk(torchrun):
    torchrun(SCRIPT, timeout=120)
