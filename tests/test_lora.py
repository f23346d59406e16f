"""LoRA as a baseline: adapters train, merge into a plain model, and save loadable; with a mask,
the merge changes only selected weights."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from wagle.attribution.masks import save_mask
from wagle.unlearning import UnlearnConfig, unlearn


def _config(tmp_path, **overrides) -> UnlearnConfig:
    return UnlearnConfig(
        model=str(tmp_path / "model"), forget=str(tmp_path / "forget.jsonl"),
        retain=str(tmp_path / "retain.jsonl"), out=str(tmp_path / "out"), method="graddiff",
        lora=True, lora_rank=4, max_steps=3, warmup=0, batch_size=2,
        gradient_accumulation_steps=1, learning_rate=5e-2, max_length=48, progress=False,
        **overrides,
    )  # fmt: skip


def test_lora_trains_merges_and_saves_a_plain_loadable_model(tmp_path, saved_inputs):
    original = saved_inputs()
    result = unlearn(_config(tmp_path))
    assert not any("lora" in name for name, _ in result.model.named_parameters())
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    names = [n for n, _ in loaded.named_parameters()]
    assert names == [n for n, _ in original.named_parameters()]
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(dict(loaded.named_parameters())[q], original.get_parameter(q))
    embed = "model.embed_tokens.weight"  # not a LoRA target: untouched
    assert torch.equal(dict(loaded.named_parameters())[embed], original.get_parameter(embed))


def test_lora_with_a_mask_changes_only_selected_weights(tmp_path, saved_inputs):
    original = saved_inputs()
    generator = torch.Generator().manual_seed(0)
    mask = {
        n: torch.rand(p.shape, generator=generator) < 0.3 for n, p in original.named_parameters()
    }
    mask["model.layers.1.self_attn.v_proj.weight"][:] = False  # no adapter on this module
    save_mask(mask, tmp_path / "mask.safetensors")
    unlearn(_config(tmp_path, mask=str(tmp_path / "mask.safetensors")))
    loaded = dict(AutoModelForCausalLM.from_pretrained(tmp_path / "out").named_parameters())
    changed = 0
    for name, before in original.named_parameters():
        after = loaded[name].detach()
        assert torch.equal(before.detach()[~mask[name]], after[~mask[name]]), name
        changed += int((before.detach() != after)[mask[name]].sum())
    assert changed > 0
