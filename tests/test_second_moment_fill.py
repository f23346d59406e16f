"""Dense-state masked AdamW on CPU sets the unselected entries' second moments to 1.0 after its
first step (and every ``REFILL`` steps), so that torch's CPU ``sqrt`` never meets their zeros
(MKL's slow path). Their first moments stay exactly 0, so AdamW's update there is
0/(√v̂+ε) = 0 whatever v is: every weight is the same, bit for bit, as without the fill."""

from __future__ import annotations

import copy

import pytest
import torch

import wagle.unlearning.masking as masking
from wagle.unlearning import (
    METHODS,
    MaskedUnlearningTrainer,
    PairCollator,
    PairedDataset,
    UnlearnConfig,
)
from wagle.unlearning.masking import MaskEnforcer
from wagle.unlearning.run import training_arguments

INT = {torch.float32: torch.int32, torch.bfloat16: torch.int16}


def _run(dtype, fused: bool, fill: bool, steps: int = 12, resume_at: int | None = None):
    """Two linear layers (half of each selected), AdamW (wd 0.1, lr 1e-2) with the masked
    decay, ``steps`` steps of seeded random gradients, zeroed and clipped to norm 1 as the
    Trainer does; at ``resume_at`` a fresh optimizer loads the state dict (as a resumed run)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.Linear(30, 20)).to(dtype)
    generator = torch.Generator().manual_seed(1)
    mask = {n: torch.rand(p.shape, generator=generator) < 0.5 for n, p in model.named_parameters()}
    enforcer = MaskEnforcer(model, mask)

    def optimizer_of() -> torch.optim.Optimizer:
        kind = {"fused": True} if fused else {"foreach": False}  # the Trainer's two AdamWs
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, **kind)
        enforcer.make_weight_decay_mask_aware(optimizer)
        if fill:
            enforcer.keep_second_moments_normal(optimizer)
        return optimizer

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer, grads = optimizer_of(), torch.Generator().manual_seed(2)
    for step in range(steps):
        if step == resume_at:
            saved = copy.deepcopy(optimizer.state_dict())
            optimizer = optimizer_of()
            optimizer.load_state_dict(saved)
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=grads).to(dtype)
        enforcer.zero_unselected_grads()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return model, before, mask, optimizer


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("fused", [False, True], ids=["adamw_torch", "adamw_torch_fused"])
def test_filled_second_moments_change_no_weight_bit(dtype, fused, monkeypatch):
    """12 steps with REFILL = 5 (fills after steps 1, 6 and 11), and the same run resumed from
    its state dict before step 8 (the new hook fills again after step 8): every weight's bits
    equal those of the run without the fill (the selected entries' arithmetic is untouched);
    unselected weights equal their start; there the fill left exp_avg = 0 and exp_avg_sq > 0
    (without it: 0)."""
    monkeypatch.setattr(masking, "REFILL", 5)
    reference, before, mask, plain = _run(dtype, fused, fill=False)
    for resume_at in (None, 7):
        model, _, _, optimizer = _run(dtype, fused, fill=True, resume_at=resume_at)
        for (name, param), ref in zip(
            model.named_parameters(), reference.parameters(), strict=True
        ):
            bits = param.detach().view(INT[dtype])
            assert torch.equal(bits, ref.detach().view(INT[dtype])), (name, resume_at)
            outside = ~mask[name]
            assert torch.equal(bits[outside], before[name].view(INT[dtype])[outside]), name
            state, unfilled = optimizer.state[param], plain.state[ref]
            assert state["exp_avg"][outside].view(INT[dtype]).eq(0).all()
            assert state["exp_avg_sq"][outside].gt(0).all()
            assert unfilled["exp_avg_sq"][outside].eq(0).all()
            assert not torch.equal(bits[mask[name]], before[name].view(INT[dtype])[mask[name]])


def _examples(n: int, vocab: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(3, vocab, (n, 10), generator=generator).tolist()
    return [{"input_ids": r, "labels": [-100] * 3 + r[3:]} for r in rows]


def test_the_trainer_fills_and_trains_the_same_weights(tiny_model, monkeypatch, tmp_path):
    """GradDiff, dense state, a random mask of 50%, 4 steps of 2 micro-batches (warm-up,
    clipping, masked decay): the Trainer installs the fill (the unselected second moments end
    positive) and ends with the weights of the same run without it, bit for bit."""

    def train(fill: bool) -> MaskedUnlearningTrainer:
        if not fill:
            monkeypatch.setattr(MaskEnforcer, "keep_second_moments_normal", lambda *a: None)
        model = tiny_model(seed=0)
        generator = torch.Generator().manual_seed(0)
        mask = {
            n: torch.rand(p.shape, generator=generator) < 0.5 for n, p in model.named_parameters()
        }
        vocab = model.get_input_embeddings().num_embeddings
        data = PairedDataset(_examples(16, vocab, 1), _examples(16, vocab, 2))
        config = UnlearnConfig(
            model="-", forget="-", retain="-", out="-", method="graddiff", max_steps=4,
            batch_size=2, gradient_accumulation_steps=2, learning_rate=1e-2, warmup=1,
            weight_decay=0.1, max_grad_norm=0.5, progress=False,
        )  # fmt: skip
        objective = METHODS["graddiff"]()
        trainer = MaskedUnlearningTrainer(
            model=model, args=training_arguments(config, str(tmp_path / str(fill))),
            train_dataset=data, data_collator=PairCollator(0), objective=objective, mask=mask,
            optimizer_state="full",
        )  # fmt: skip
        objective.prepare(model, data, 0)
        trainer.train()
        trainer.mask = mask
        return trainer

    filled, plain = train(True), train(False)
    names = dict(filled.model.named_parameters())
    for name, ref in plain.model.named_parameters():
        param = names[name]
        assert torch.equal(param.detach().view(torch.int32), ref.detach().view(torch.int32)), name
        outside = ~filled.mask[name]
        state = filled.optimizer.state[param]
        assert state["exp_avg_sq"][outside].gt(0).all(), name
        assert plain.optimizer.state[ref]["exp_avg_sq"][outside].eq(0).all(), name
