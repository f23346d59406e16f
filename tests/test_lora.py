"""LoRA as a baseline: adapters train, merge into a plain model, and save loadable; with a mask,
the merge changes only selected weights."""

from __future__ import annotations

import itertools

import torch
from transformers import AutoModelForCausalLM

from wagle.attribution.masks import save_mask
from wagle.unlearning import UnlearnConfig, unlearn


def _config(tmp_path, **overrides) -> UnlearnConfig:
    options = dict(
        model=str(tmp_path / "model"), forget=str(tmp_path / "forget.jsonl"),
        retain=str(tmp_path / "retain.jsonl"), out=str(tmp_path / "out"), method="graddiff",
        lora=True, lora_rank=4, max_steps=3, warmup=0, batch_size=2,
        gradient_accumulation_steps=1, learning_rate=5e-2, max_length=48, progress=False,
    )  # fmt: skip
    return UnlearnConfig(**(options | overrides))


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


def _half_mask(model, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=generator) < 0.5 for n, p in model.named_parameters()}


def test_masked_lora_trains_under_the_mask_and_merges_into_the_trained_model(
    tiny_model, tokenizer, micro_splits
):
    """The mask acts in the forward pass: the objective (PO: NLL of refusals + retain NLL)
    falls, the merged plain model computes the same logits as the trained parametrized one,
    and every unselected weight is bit-identical to the original."""
    from wagle.data.batching import encode_records, iter_batches
    from wagle.unlearning.lora import add_lora, merge_lora
    from wagle.unlearning.objective import mean_nll

    torch.manual_seed(0)
    model = tiny_model(seed=0)
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = _half_mask(model)
    add_lora(model, ["q_proj", "v_proj", "down_proj"], rank=4, alpha=8.0, mask=mask)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A" in n or ".lora_B" in n for n in trainable)
    examples = encode_records(tokenizer, micro_splits["forget10"][:8], max_length=48)
    batch = next(iter_batches(examples, 8, tokenizer.pad_token_id))
    optimizer = torch.optim.AdamW(trainable.values(), lr=5e-2)
    losses = []
    for _ in range(12):
        loss = mean_nll(model.train(), batch)
        losses.append(float(loss.detach()))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < losses[0] - 0.05
    with torch.no_grad():
        trained_logits = model.eval()(batch["input_ids"], attention_mask=batch["attention_mask"])
    merged = merge_lora(model, mask)
    assert [n for n, _ in merged.named_parameters()] == list(original)
    with torch.no_grad():
        merged_logits = merged(batch["input_ids"], attention_mask=batch["attention_mask"])
    torch.testing.assert_close(merged_logits.logits, trained_logits.logits, rtol=0, atol=1e-6)
    changed = 0
    for name, param in merged.named_parameters():
        assert torch.equal(param.detach()[~mask[name]], original[name][~mask[name]]), name
        changed += int((param.detach() != original[name])[mask[name]].sum())
    assert changed > 0


def test_lora_initialisation_is_seeded_by_the_run(tmp_path, saved_inputs):
    """Two runs with one seed: identical weights (LoRA's A is random: it is seeded too)."""
    saved_inputs()
    first = unlearn(_config(tmp_path, out=str(tmp_path / "a"))).model
    torch.manual_seed(1234)  # whatever the global RNG holds, the run seeds itself
    second = unlearn(_config(tmp_path, out=str(tmp_path / "b"))).model
    for (name, a), b in zip(first.named_parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_masked_lora_merges_the_weight_bf16_autocast_trained_with(tiny_model):
    """Under bf16 autocast (``bf16: true``) the forward pass's W' = where(M, W + ΔW, W) is
    computed with ΔW in fp32, as the merge computes it: the merged weight is bit for bit the
    one training used (before, autocast made ΔW a bf16 product in training only)."""
    from wagle.unlearning.lora import add_lora, merge_lora

    model = tiny_model(seed=0)
    mask = _half_mask(model)
    add_lora(model, ["q_proj"], rank=4, alpha=8.0, mask=mask)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()  # a trained B (it starts at 0)
    module = model.model.layers[0].self_attn.q_proj
    with torch.autocast("cpu", dtype=torch.bfloat16):
        trained = module.weight.detach().clone()  # what a forward pass in training uses
    assert trained.dtype == torch.float32
    merged = merge_lora(model, mask).model.layers[0].self_attn.q_proj.weight
    assert torch.equal(merged.detach(), trained)
