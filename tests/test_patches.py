"""Patches: exact to the bit, sparse, checked against their base, composable.

The fixture ``run`` is a real masked unlearning run (GradDiff, 2 steps at lr 1e-2 under a
random half mask) saved with ``--save both``: the unlearned model and its patch, made in
memory against the base's files. In bf16 the run keeps fp32 masters of the selected weights
(``optimizer_state: selected``) and the weights stay bf16, so the patch holds bf16 values.
"""

from __future__ import annotations

import json

import pytest
import torch

from wagle.attribution.masks import load_mask, save_mask
from wagle.errors import WagleError
from wagle.models import load_model
from wagle.patches import (
    ModelFiles,
    apply_patch,
    apply_patch_files,
    compose_patches,
    create_patch,
    model_tensors,
    open_patch,
    patch_info,
    revert_patch,
    revert_patch_files,
)
from wagle.patches.bits import bits
from wagle.unlearning import UnlearnConfig, unlearn


def same_bits(a, b) -> bool:
    """Every tensor of two mappings has the same bits (names, shapes and dtypes equal too)."""
    return set(a) == set(b) and all(
        a[n].dtype == b[n].dtype
        and a[n].shape == b[n].shape
        and torch.equal(bits(a[n]), bits(b[n]))
        for n in a
    )


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def run(request, tmp_path_factory, tiny_model, tokenizer, micro_splits):
    """``base/`` (a tiny Llama in the dtype), ``mask.safetensors`` (random, half of every
    tensor), ``out/`` (the unlearned model and ``patch.safetensors``)."""
    root = tmp_path_factory.mktemp(request.param)
    model = tiny_model(seed=0).to(getattr(torch, request.param))
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    for name, records in (
        ("forget", micro_splits["forget10"][:8]),
        ("retain", micro_splits["retain90"][:8]),
    ):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    generator = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(p.shape, generator=generator) < 0.5 for n, p in model.named_parameters()}
    save_mask(mask, root / "mask.safetensors", {"ratio": 0.5})
    unlearn(UnlearnConfig(
        model=str(root / "base"), forget=str(root / "forget.jsonl"),
        retain=str(root / "retain.jsonl"), out=str(root / "out"), method="graddiff",
        mask=str(root / "mask.safetensors"), learning_rate=1e-2, max_steps=2, warmup=0,
        batch_size=4, gradient_accumulation_steps=1, max_length=48, progress=False,
        dtype=request.param, optimizer_state="selected", save="both",
    ))  # fmt: skip
    return root


def test_apply_gives_the_unlearned_model_bit_for_bit(run, tmp_path):
    apply_patch_files(run / "base", run / "out" / "patch.safetensors", tmp_path / "applied")
    assert same_bits(ModelFiles(tmp_path / "applied"), ModelFiles(run / "out"))
    # the rest of the directory (config, tokenizer) is the base's, copied as it is
    assert (tmp_path / "applied" / "config.json").read_bytes() == (
        run / "base" / "config.json"
    ).read_bytes()


def test_revert_of_apply_gives_the_base_bit_for_bit(run, tmp_path):
    patch = run / "out" / "patch.safetensors"
    apply_patch_files(run / "base", patch, tmp_path / "applied")
    revert_patch_files(tmp_path / "applied", patch, tmp_path / "reverted")
    assert same_bits(ModelFiles(tmp_path / "reverted"), ModelFiles(run / "base"))
    assert not same_bits(ModelFiles(tmp_path / "applied"), ModelFiles(run / "base"))


def test_entries_are_the_changed_weights_and_lie_in_the_mask(run):
    """The patch holds one entry per weight whose bits changed, no more; all inside the mask
    (the masked run changes a subset of it: in bf16 many updates round away)."""
    patch = open_patch(run / "out" / "patch.safetensors")
    base, unlearned = ModelFiles(run / "base"), ModelFiles(run / "out")
    mask = load_mask(run / "mask.safetensors")
    changed = {n: (bits(base[n]) != bits(unlearned[n])).nonzero().reshape(-1) for n in base}
    assert patch.total_entries == sum(c.numel() for c in changed.values()) > 0
    for name in base:
        if changed[name].numel() == 0:
            assert name not in patch.entries
            continue
        (index,) = patch.read(name, "index")
        assert index.dtype == torch.int32 and torch.equal(index.long(), changed[name])
        assert mask[name].reshape(-1)[index.long()].all()
    assert patch.total_entries < sum(m.sum() for m in mask.values())


def test_in_memory_and_file_paths_agree(run, tmp_path):
    """The run's patch (made from the model in memory) equals ``create_patch`` on the two
    directories; ``apply_patch`` on a loaded model equals ``apply_patch_files``."""
    made_in_memory = open_patch(run / "out" / "patch.safetensors")
    from_files = create_patch(
        ModelFiles(run / "base"), ModelFiles(run / "out"), tmp_path / "p.safetensors"
    )
    assert made_in_memory.names == from_files.names
    for name in from_files.names:
        assert same_bits(
            dict(zip("ion", made_in_memory.read(name, "index", "old", "new"), strict=True)),
            dict(zip("ion", from_files.read(name, "index", "old", "new"), strict=True)),
        )
    assert made_in_memory.metadata["result"] == from_files.metadata["result"]

    dtype = ModelFiles(run / "base")["model.norm.weight"].dtype
    model = load_model(run / "base", dtype=str(dtype).removeprefix("torch."))
    apply_patch(model, made_in_memory)
    assert same_bits(model_tensors(model), ModelFiles(run / "out"))
    revert_patch(model, made_in_memory)
    assert same_bits(model_tensors(model), ModelFiles(run / "base"))


def test_run_patch_records_the_run(run):
    meta = open_patch(run / "out" / "patch.safetensors").metadata
    from wagle.patches import mask_hash

    assert meta["method"] == "graddiff" and meta["ratio"] == 0.5
    assert meta["mask_sha256"] == mask_hash(load_mask(run / "mask.safetensors"))
    assert meta["base_model"] == str(run / "base") and meta["evaluation"] is None
    assert len(meta["recipe_hash"]) == 12
    assert meta["base"]["tensors"]["model.norm.weight"] == [
        [16],
        "F32" if "float32" in run.name else "BF16",
    ]


def test_a_patch_is_exact_where_a_delta_is_not(tmp_path):
    """bf16 weight 1.0 unlearned to 1000.0: the delta 999.0 rounds to 1000.0 in bf16 (its
    spacing is 4 between 512 and 1024), so new − delta = 0.0, not 1.0. A patch stores the values
    themselves and reverts to 1.0. 0.0 → -0.0 (equal as numbers, other bits) and a NaN whose
    payload changed are changes too; 2.0 → 2.0 is not."""
    layer = torch.nn.Linear(4, 1, bias=False).to(torch.bfloat16)
    base = torch.tensor([[1.0, 0.0, float("nan"), 2.0]], dtype=torch.bfloat16)
    new = torch.tensor([[1000.0, -0.0, float("nan"), 2.0]], dtype=torch.bfloat16)
    bits(new)[2] = bits(base)[2] + 1  # 0x7FC0 → 0x7FC1: another NaN
    delta = new - base
    assert delta[0, 0].item() == 1000.0 and (new - delta)[0, 0].item() == 0.0

    with torch.no_grad():
        layer.weight.copy_(base)
    patch = create_patch({"weight": base}, {"weight": new}, tmp_path / "p.safetensors")
    assert patch.entries == {"weight": 3}
    apply_patch(layer, patch)
    assert torch.equal(bits(layer.weight.data), bits(new))
    revert_patch(layer, patch)
    assert torch.equal(bits(layer.weight.data), bits(base))


def test_a_mismatched_model_is_refused_and_left_untouched(tiny_model, tmp_path):
    base, unlearned, other = tiny_model(seed=0), tiny_model(seed=0), tiny_model(seed=1)
    with torch.no_grad():
        unlearned.model.layers[0].mlp.up_proj.weight[0, :3] += 1.0
    patch = create_patch(model_tensors(base), model_tensors(unlearned), tmp_path / "p.safetensors")
    before = {n: t.clone() for n, t in model_tensors(other).items()}
    with pytest.raises(
        WagleError,
        match=r"does not match the patch's base: model.layers.0.mlp"
        r".up_proj.weight holds other values at 3 of its 3 patched entries",
    ):
        apply_patch(other, patch)
    assert same_bits(model_tensors(other), before)

    apply_patch(base, patch)
    with pytest.raises(
        WagleError, match=r"at 3 of its 3 .* \(it holds the patch's new values: already patched\)"
    ):
        apply_patch(base, patch)
    with pytest.raises(
        WagleError, match=r"lm_head.weight is \(400, 16\) BF16 there but \(400, 16\) F32 in"
    ):
        apply_patch(tiny_model(seed=0).to(torch.bfloat16), patch)
    with pytest.raises(
        WagleError, match=r"does not match the patch's result: .* \(was the patch applied\?\)"
    ):
        revert_patch(other, patch)


def test_compose_equals_one_patch_then_the_other(tiny_model, tmp_path):
    """P1 changes up_proj[0, 0:4]; P2, made on P1's result, changes up_proj[0, 2:6] and puts
    [0, 3] back to the base's value. P12 = compose(P1, P2) changes [0, 0:3] and [0, 4:6]:
    5 entries, [0, 3] left out because it ends where it started."""
    base, m1 = tiny_model(seed=0), tiny_model(seed=0)
    up = "model.layers.0.mlp.up_proj.weight"
    with torch.no_grad():
        model_tensors(m1)[up][0, 0:4] += 1.0
    m2 = tiny_model(seed=0)
    m2.load_state_dict(m1.state_dict())
    with torch.no_grad():
        model_tensors(m2)[up][0, 2:6] += 1.0
        model_tensors(m2)[up][0, 3] = model_tensors(base)[up][0, 3]
    p1 = create_patch(model_tensors(base), model_tensors(m1), tmp_path / "p1.safetensors")
    p2 = create_patch(model_tensors(m1), model_tensors(m2), tmp_path / "p2.safetensors")
    p12 = compose_patches(p1, p2, tmp_path / "p12.safetensors")

    (index,) = p12.read(up, "index")
    assert index.tolist() == [0, 1, 2, 4, 5] and p12.names == [up]
    one_then_other, composed = tiny_model(seed=0), tiny_model(seed=0)
    apply_patch(one_then_other, p1)
    apply_patch(one_then_other, p2)
    apply_patch(composed, p12)
    assert same_bits(model_tensors(composed), model_tensors(one_then_other))
    assert same_bits(model_tensors(composed), model_tensors(m2))
    assert [part["path"] for part in p12.metadata["composed_of"]] == [str(p1.path), str(p2.path)]

    # P3 (base → m2) was made on the base, not on P1's result: at the 3 entries both change,
    # [0, 0:3], P3's old value is the base's, not P1's new one.
    p3 = create_patch(model_tensors(base), model_tensors(m2), tmp_path / "p3.safetensors")
    with pytest.raises(
        WagleError, match=f"not made on top of .*p1.safetensors's result: at {up}, 3 of the 3 "
    ):
        compose_patches(p1, p3, tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_info_counts_entries_and_bytes_per_layer(tiny_model, tmp_path):
    """fp32 entries cost 12 bytes (int32 position, old and new value). 3 changed entries in
    layer 0's q_proj and 2 in the embeddings: layer 0 has 3 entries, 36 bytes, of its 2,592
    weights (4·16² + 3·16·32 + 2·16); "other" 2 entries, 24 bytes, of 12,816 weights (the
    embeddings and the untied LM head, 400·16 each, and the final norm's 16)."""
    base, new = tiny_model(seed=0), tiny_model(seed=0)
    with torch.no_grad():
        model_tensors(new)["model.layers.0.self_attn.q_proj.weight"][1, :3] = 0.5
        model_tensors(new)["model.embed_tokens.weight"][7, 5:7] = 0.5
    patch = create_patch(
        model_tensors(base), model_tensors(new), tmp_path / "p.safetensors", {"method": "hand"}
    )
    info = patch_info(patch)
    assert info["layers"]["0"] == {
        "weights": 2592,
        "model_bytes": 10368,
        "entries": 3,
        "patch_bytes": 36,
        "tensors": 1,
    }
    assert info["layers"]["1"]["entries"] == 0
    assert info["layers"]["other"] == {
        "weights": 12816, "model_bytes": 51264, "entries": 2, "patch_bytes": 24, "tensors": 1,
    }  # fmt: skip
    assert info["entries"] == 5 and info["file_bytes"] == patch.path.stat().st_size
    assert info["metadata"]["method"] == "hand"


def test_a_corrupt_patch_is_refused(tiny_model, tmp_path):
    """One byte of a new value changed on disk: the header's hash of the new values no longer
    matches, so the patch is refused before anything is written."""
    base, new = tiny_model(seed=0), tiny_model(seed=0)
    with torch.no_grad():
        model_tensors(new)["model.norm.weight"][:4] = 2.0
    patch = create_patch(model_tensors(base), model_tensors(new), tmp_path / "p.safetensors")
    raw = bytearray(patch.path.read_bytes())
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    offset = 8 + header_len + header["new/model.norm.weight"]["data_offsets"][0]
    raw[offset + 1] ^= 0x01
    patch.path.write_bytes(bytes(raw))
    with pytest.raises(WagleError, match="is corrupt: its new values do not match their hash"):
        apply_patch(base, patch.path)
    assert same_bits(model_tensors(base), model_tensors(tiny_model(seed=0)))


def test_a_sharded_model_is_patched_file_by_file(tiny_model, tmp_path):
    """A model saved in several shards (with model.safetensors.index.json): the patch writes
    each entry into the shard that holds its tensor; the other shards are copied as they are."""
    base, new = tiny_model(seed=0), tiny_model(seed=0)
    with torch.no_grad():
        model_tensors(new)["lm_head.weight"][3, :2] = 1.0
        model_tensors(new)["model.layers.1.self_attn.q_proj.weight"][0, 0] = 1.0
    base.save_pretrained(tmp_path / "base", max_shard_size="20KB")
    new.save_pretrained(tmp_path / "new", max_shard_size="20KB")
    shards = sorted(p.name for p in (tmp_path / "base").glob("*.safetensors"))
    assert len(shards) > 2 and (tmp_path / "base" / "model.safetensors.index.json").is_file()
    patch = create_patch(
        ModelFiles(tmp_path / "base"), ModelFiles(tmp_path / "new"), tmp_path / "p.safetensors"
    )
    assert patch.total_entries == 3
    apply_patch_files(tmp_path / "base", patch, tmp_path / "applied")
    assert same_bits(ModelFiles(tmp_path / "applied"), ModelFiles(tmp_path / "new"))
    changed = [
        s
        for s in shards
        if (tmp_path / "applied" / s).read_bytes() != (tmp_path / "base" / s).read_bytes()
    ]
    assert 1 <= len(changed) <= 2
