"""Attribution with the model sharded by FSDP2 over two CPU processes (``torchrun``, gloo)
writes the masks of one process, byte for byte.

One launch runs every case, to pay the start-up once:
- the library on a model sharded by hand: q_proj, o_proj and lm_head on their columns
  (dim 1), the rest on rows, the MLP's in uneven chunks; every score method, each granularity;
- ``wagle attribute --fsdp`` (the model sharded as it loads), a sweep of two ratios.

q_proj and the MLP weights are rounded to multiples of 0.01 first, so that magnitude scores
tie in large groups: the global threshold then falls inside a tie group that spans processes
and tensors (filled in global index order across column chunks), and so do per-row ones.
"""

from __future__ import annotations

import json

import torch

from wagle.attribution import AttributionConfig, attribute, load_mask
from wagle.cli import main
from wagle.cli.attribute import load_records

# (method, granularity, ratio, eligible pattern)
CASES = [
    ("wagle", None, 0.5, None),
    ("wagle-fisher", None, 0.3, None),
    ("gradient", None, 0.95, None),
    ("snip", "tensor", 0.3, None),
    ("random", None, 0.4, None),
    ("wanda", None, 0.3, None),
    ("magnitude", "global", 0.5, "q_proj"),
    ("magnitude", "row", 0.5, "q_proj|mlp"),
]

WORKER = f"""
import sys, torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Shard
from wagle.attribution import AttributionConfig, attribute, save_mask
from wagle.cli import main
from wagle.cli.attribute import load_records
from wagle.models import load_pretrained

ws = sys.argv[1]
forget, retain = load_records(f"{{ws}}/forget.jsonl"), load_records(f"{{ws}}/retain.jsonl")
model, tokenizer = load_pretrained(f"{{ws}}/model", device=None)
mesh = init_device_mesh("cpu", (2,))
columns = ("q_proj", "o_proj", "lm_head")
def placement(param):
    name = next(n for n, p in model.named_parameters() if p is param)
    return Shard(1) if any(c in name for c in columns) else Shard(0)
for layer in model.model.layers:
    fully_shard(layer, mesh=mesh, shard_placement_fn=placement)
fully_shard(model, mesh=mesh)
assert model.model.layers[0].self_attn.q_proj.weight.placements == (Shard(1),)
for i, (method, granularity, ratio, pattern) in enumerate({CASES!r}):
    config = AttributionConfig(
        method=method, ratio=[ratio], granularity=granularity, eligible_pattern=pattern,
        gamma=[1e-3], retain_samples=-1, batch_size=2,
    )
    result = attribute(model, tokenizer, forget, retain, config, progress=False)
    mask = result.select(result.scores(), ratio)
    if torch.distributed.get_rank() == 0:
        save_mask(mask, f"{{ws}}/case{{i}}.safetensors")
    else:
        assert mask == {{}}
common = ["--model", f"{{ws}}/model", "--forget", f"{{ws}}/forget.jsonl", "--retain",
          f"{{ws}}/retain.jsonl", "--ratio", "0.5", "0.95", "--batch-size", "2", "--quiet"]
assert main(["attribute", *common, "--fsdp", "--out", f"{{ws}}/two/m.safetensors"]) == 0
"""


def test_fsdp2_attribution_writes_the_one_process_masks(
    tmp_path, tiny_model, tokenizer, micro_splits, torchrun
):
    """8 forget and 7 retain samples (process 0 takes 4 and 4, process 1 takes 4 and 3 and
    pads its last retain batch); intermediate size 33 splits into row chunks of 17 and 16
    (FSDP2 shards unevenly on dim 0 only)."""
    model = tiny_model(seed=0, intermediate_size=33)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "mlp" in name or "q_proj" in name:
                param.copy_(torch.round(param * 100) / 100)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    for name, records in (
        ("forget", micro_splits["forget10"][:8]),
        ("retain", micro_splits["retain90"][:7]),
    ):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    torchrun(WORKER)

    forget, retain = (load_records(tmp_path / f"{n}.jsonl") for n in ("forget", "retain"))
    for i, (method, granularity, ratio, pattern) in enumerate(CASES):
        config = AttributionConfig(
            method=method, ratio=[ratio], granularity=granularity, eligible_pattern=pattern,
            gamma=[1e-3], retain_samples=-1, batch_size=2,
        )  # fmt: skip
        result = attribute(model, tokenizer, forget, retain, config, progress=False)
        expected = result.select(result.scores(), ratio)
        mask = load_mask(tmp_path / f"case{i}.safetensors")
        assert mask.keys() == expected.keys()
        differ = [n for n in expected if not torch.equal(mask[n], expected[n])]
        assert not differ, (method, granularity, differ)

    common = ["--model", str(tmp_path / "model"), "--forget", str(tmp_path / "forget.jsonl")]
    common += ["--retain", str(tmp_path / "retain.jsonl"), "--ratio", "0.5", "0.95"]
    assert main(["attribute", *common, "--batch-size", "2", "--quiet", "--out",
                 str(tmp_path / "one" / "m.safetensors")]) == 0  # fmt: skip
    for ratio in ("0.5", "0.95"):
        name = f"m-ratio{ratio}-gamma1e-06.safetensors"
        one, two = (tmp_path / side / name for side in ("one", "two"))
        assert one.read_bytes() == two.read_bytes(), name
