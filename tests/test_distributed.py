"""Two processes on CPU (``torchrun --nproc_per_node 2``, the CPU stand-in for ``accelerate
launch`` on GPUs, DESIGN.md §6) complete a masked unlearning run with identical weights, and
the same weights as one process with the same global batch.

2 processes × batch b and 1 process × batch 2b see the same samples per step: the sampler's
permutation is seeded the same, and accelerate deals batch k to process k mod 2, so the two
processes' micro-batches together are the single process's. With a loss that is a mean of
per-sample terms (NPO without a retain term), DDP's average of the two ranks' means is the
mean over 2b, so the runs differ only by floating-point summation order."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from wagle.attribution.masks import save_mask
from wagle.unlearning import METHODS, UnlearnConfig, unlearn

WORKER = """
import hashlib, json, os, sys
import torch
from wagle.unlearning import METHODS, UnlearnConfig, unlearn

ws = sys.argv[1]
config = UnlearnConfig(
    model=f"{ws}/model", forget=f"{ws}/forget.jsonl", retain=f"{ws}/retain.jsonl",
    out=f"{ws}/out", method="npo", mask=f"{ws}/mask.safetensors", max_steps=2, batch_size=2,
    gradient_accumulation_steps=2, learning_rate=1e-2, weight_decay=0.1, max_length=48,
    progress=False,
)
result = unlearn(config, METHODS["npo"].Options(retain_weight=0.0))
digest = hashlib.sha256()
for name, param in result.model.named_parameters():
    digest.update(name.encode() + param.detach().cpu().numpy().tobytes())
rank = int(os.environ["RANK"])
world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
with open(f"{ws}/rank{rank}.json", "w") as handle:
    json.dump({"digest": digest.hexdigest(), "world": world, "steps": len(result.step_log)}, handle)
"""


def test_two_cpu_processes_end_with_identical_weights(tmp_path, saved_inputs, torchrun):
    model = saved_inputs()
    generator = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(p.shape, generator=generator) < 0.5 for n, p in model.named_parameters()}
    save_mask(mask, tmp_path / "mask.safetensors")
    torchrun(WORKER, timeout=180)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert ranks[0]["steps"] == ranks[1]["steps"] == 2
    assert ranks[0]["digest"] == ranks[1]["digest"]
    two = load_file(tmp_path / "out" / "model.safetensors")

    one = unlearn(
        UnlearnConfig(
            model=str(tmp_path / "model"),
            forget=str(tmp_path / "forget.jsonl"),
            retain=str(tmp_path / "retain.jsonl"),
            out=str(tmp_path / "one"),
            method="npo",
            mask=str(tmp_path / "mask.safetensors"),
            max_steps=2,
            batch_size=4,
            gradient_accumulation_steps=2,
            learning_rate=1e-2,
            weight_decay=0.1,
            max_length=48,
            progress=False,
        ),
        METHODS["npo"].Options(retain_weight=0.0),
    ).model
    original = dict(model.named_parameters())
    moved = 0
    for name, param in one.named_parameters():
        torch.testing.assert_close(two[name], param.detach(), rtol=0, atol=1e-5, msg=name)
        moved += int((param.detach() - original[name].detach()).abs().gt(1e-3).sum())
    assert moved > 1000  # the runs did train: equal weights are not both the original
