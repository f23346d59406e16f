"""Selective optimizer state: AdamW moments (and fp32 masters) for the selected entries only,
the same weights as dense-state masked AdamW, the mask invariant exact by construction."""

from __future__ import annotations

import pytest
import torch

from wagle.data.batching import encode_records
from wagle.errors import WagleError
from wagle.unlearning import METHODS, MaskedUnlearningTrainer, PairCollator, PairedDataset
from wagle.unlearning.config import UnlearnConfig
from wagle.unlearning.run import training_arguments
from wagle.unlearning.selective_adamw import SelectiveAdamW, use_selective_state


def _data(tokenizer, splits, n: int = 8) -> PairedDataset:
    forget = encode_records(tokenizer, splits["forget10"][:n], max_length=48)
    retain = encode_records(tokenizer, splits["retain90"][: 2 * n], max_length=48)
    return PairedDataset(forget, retain, seed=0)


def _train(model, tokenizer, splits, mask, state, tmp_path, steps=4, **overrides):
    options = dict(
        model="-", forget="-", retain="-", out="-", learning_rate=1e-2, batch_size=2,
        gradient_accumulation_steps=2, max_steps=steps, warmup=2, weight_decay=0.1,
        max_grad_norm=0.05, progress=False, lr_scheduler="cosine",
    ) | overrides  # fmt: skip
    data = _data(tokenizer, splits)
    trainer = MaskedUnlearningTrainer(
        model=model,
        args=training_arguments(UnlearnConfig(**options), str(tmp_path)),
        train_dataset=data,
        data_collator=PairCollator(tokenizer.pad_token_id),
        objective=METHODS["graddiff"](),
        mask=mask,
        optimizer_state=state,
    )
    trainer.train()
    return trainer


def _inner(trainer) -> torch.optim.Optimizer:
    """The optimizer inside accelerate's ``AcceleratedOptimizer`` wrapper."""
    return getattr(trainer.optimizer, "optimizer", trainer.optimizer)


def test_selected_state_gives_the_weights_of_dense_state_masked_adamw(
    tiny_model, tokenizer, micro_splits, tmp_path, random_mask
):
    """fp32, 4 steps of 2 accumulated micro-batches, clipping at 0.05 (active: the norm of
    this model's gradient is ~1), warm-up then cosine, weight decay 0.1 on the selected
    entries: both modes end with the same weights to 1e-6, and state only for selected."""
    dense, selective = tiny_model(seed=0), tiny_model(seed=0)
    mask = random_mask(dense, 0.2)
    before = {n: p.detach().clone() for n, p in dense.named_parameters()}
    full = _train(dense, tokenizer, micro_splits, mask, "full", tmp_path)
    chosen = _train(selective, tokenizer, micro_splits, mask, "selected", tmp_path)
    assert not full.selective_state and isinstance(_inner(chosen), SelectiveAdamW)
    for (name, a), b in zip(dense.named_parameters(), selective.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6, msg=name)
        assert torch.equal(b[~mask[name]], before[name][~mask[name]]), name
    moved = sum(int((p != before[n])[mask[n]].sum()) for n, p in selective.named_parameters())
    assert moved > 0.9 * sum(int(s.sum()) for s in mask.values())
    # an int32 index and two fp32 moments per selected entry of every partly selected
    # parameter (the fully selected one needs no index; the empty one is frozen)
    full_one = mask["model.layers.1.mlp.down_proj.weight"].numel()
    selected = sum(int(s.sum()) for s in mask.values())
    assert _inner(chosen).state_bytes() == 12 * selected - 4 * full_one


def test_bf16_weights_get_fp32_masters_for_selected_entries_only(
    tiny_model, tokenizer, micro_splits, tmp_path, random_mask
):
    """bf16 weights: index + master + two moments = 16 bytes per selected entry (no index for
    the fully selected parameter); unselected entries bit-identical."""
    model = tiny_model(seed=0).to(torch.bfloat16)
    mask = random_mask(model, 0.2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = _train(model, tokenizer, micro_splits, mask, "selected", tmp_path, learning_rate=1e-4)
    full_one = mask["model.layers.1.mlp.down_proj.weight"].numel()
    selected = sum(int(s.sum()) for s in mask.values())
    assert _inner(trainer).state_bytes() == 16 * selected - 4 * full_one
    for name, param in model.named_parameters():
        outside = ~mask[name]
        assert torch.equal(
            param.view(torch.int16)[outside], before[name].view(torch.int16)[outside]
        )


def test_auto_picks_selected_below_half_density(tiny_model, random_mask):
    model = tiny_model(seed=0)
    sparse, dense = random_mask(model, 0.2), random_mask(model, 0.9)
    assert use_selective_state("auto", sparse, model)
    assert not use_selective_state("auto", dense, model)
    assert not use_selective_state("auto", None, model)
    assert not use_selective_state("auto", sparse, model, "sgd")
    assert use_selective_state("selected", dense, model)
    with pytest.raises(WagleError, match="needs optimizer"):
        use_selective_state("selected", sparse, model, "sgd")


def test_optimizer_state_is_validated_in_the_config():
    base = {"model": "m", "forget": "f", "retain": "r", "out": "o"}
    with pytest.raises(WagleError, match="optimizer_state must be one of"):
        UnlearnConfig(**base, optimizer_state="half")
    with pytest.raises(WagleError, match="optimizer 'sgd' is not supported"):  # no sgd at all
        UnlearnConfig(**base, optimizer_state="selected", optimizer="sgd")


def test_a_saved_state_loads_back_with_its_fp32_moments_and_masters(tiny_model, random_mask):
    """torch's load_state_dict casts floating state to a bf16 parameter's dtype; the selective
    state of bf16 weights must come back fp32 and equal, so a resumed run continues exactly."""
    model = tiny_model(seed=0).to(torch.bfloat16)
    mask = random_mask(model, 0.2)
    selected = {id(p): mask[n] for n, p in model.named_parameters()}
    optimizer = SelectiveAdamW(model.parameters(), selected, lr=1e-3)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    saved = optimizer.state_dict()
    again = SelectiveAdamW(model.parameters(), selected, lr=1e-3)
    again.load_state_dict(saved)
    for p in model.parameters():
        before, after = optimizer.state[p], again.state[p]
        assert before.keys() == after.keys() and after["step"] == 1
        for key in ("exp_avg", "exp_avg_sq", "master", "index"):
            if key in before:
                assert after[key].dtype == before[key].dtype and torch.equal(
                    after[key], before[key]
                )


def test_flat_buckets_and_a_reloaded_state_continue_bit_for_bit(monkeypatch):
    """fp32 and bf16 parameters, buckets of at most 60 selected entries (so several, split by
    dtype and size): 4 steps in one go equal 2 steps, a save, a load into a fresh optimizer
    and 2 more steps, bit for bit; unselected entries never change."""
    import wagle.unlearning.selective_adamw as selective_adamw

    monkeypatch.setattr(selective_adamw, "BUCKET", 60)

    def params():
        torch.manual_seed(0)
        shapes = [(8, 10), (30,), (6, 10), (8, 10)]
        made = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
        made[2].data = made[2].data.bfloat16()
        return made

    generator = torch.Generator().manual_seed(1)
    masks = [torch.rand(p.shape, generator=generator) < 0.4 for p in params()]
    grads = [[torch.randn(p.shape, generator=generator) for p in params()] for _ in range(4)]

    def steps(ps, optimizer, which):
        for step in which:
            for p, g in zip(ps, grads[step], strict=True):
                p.grad = g.to(p.dtype)
            optimizer.step()

    def make(ps):
        selected = {id(p): m for p, m in zip(ps, masks, strict=True)}
        selected.pop(id(ps[1]))  # fully selected
        return SelectiveAdamW([{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.0}],
                              selected, lr=1e-2, weight_decay=0.1)  # fmt: skip

    straight = params()
    optimizer = make(straight)
    steps(straight, optimizer, range(4))
    assert len(optimizer._buckets) >= 3
    resumed = params()
    first = make(resumed)
    steps(resumed, first, range(2))
    saved = first.state_dict()
    second = make(resumed)
    second.load_state_dict(saved)
    steps(resumed, second, range(2, 4))
    original = params()
    for i, (a, b, before, m) in enumerate(zip(straight, resumed, original, masks, strict=True)):
        assert torch.equal(a, b)
        assert i == 1 or torch.equal(a[~m], before[~m])  # parameter 1 is fully selected
