"""The masking invariant: after unlearning, every weight outside the mask is bit-for-bit
unchanged, and the weights inside it did change — for every method, in fp32 and bf16, with
AdamW (weight decay 0.1), clipping, warm-up and gradient accumulation."""

from __future__ import annotations

import pytest
import torch

from wagle.data.batching import encode_records
from wagle.errors import WagleError
from wagle.unlearning import (
    METHODS,
    MaskedUnlearningTrainer,
    Objective,
    PairCollator,
    PairedDataset,
    UnlearnConfig,
    full_mask,
)
from wagle.unlearning.objective import mean_nll
from wagle.unlearning.run import training_arguments

INT = {torch.float32: torch.int32, torch.bfloat16: torch.int16}


def _data(tokenizer, splits, n: int = 8) -> PairedDataset:
    forget = encode_records(tokenizer, splits["forget10"][:n], max_length=48)
    retain = encode_records(tokenizer, splits["retain90"][: 2 * n], max_length=48)
    return PairedDataset(forget, retain, seed=0)


def _train(model, tokenizer, data, objective, mask, tmp_path, steps=3, **overrides):
    options = dict(
        model="-", forget="-", retain="-", out="-", learning_rate=1e-2, batch_size=2,
        gradient_accumulation_steps=2, max_steps=steps, warmup=1, weight_decay=0.1,
        max_grad_norm=0.5, progress=False, optimizer="adamw_torch",
    ) | overrides  # fmt: skip
    trainer = MaskedUnlearningTrainer(
        model=model,
        args=training_arguments(UnlearnConfig(**options), str(tmp_path)),
        train_dataset=data,
        data_collator=PairCollator(tokenizer.pad_token_id, objective.companions()),
        objective=objective,
        mask=mask,
    )
    objective.prepare(model, data, tokenizer.pad_token_id)
    trainer.train()
    return trainer


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _assert_invariant(before, model, mask) -> None:
    """Unselected entries: identical bit patterns. Selected entries of the decoder layers: > 90%
    changed (embedding rows of unseen tokens and RMU's lm_head get no gradient, and in bf16
    weight decay alone is below rounding, so they are not counted)."""
    changed_selected = total_selected = 0
    for name, param in model.named_parameters():
        bits_before = before[name].view(INT[param.dtype])
        bits_after = param.detach().view(INT[param.dtype])
        outside = ~mask[name]
        assert torch.equal(bits_before[outside], bits_after[outside]), name
        if ".layers." in name:
            changed_selected += int((bits_before != bits_after)[mask[name]].sum())
            total_selected += int(mask[name].sum())
    assert changed_selected > 0.9 * total_selected


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_unselected_weights_stay_bit_identical(
    method, dtype, tiny_model, tokenizer, micro_splits, tmp_path, random_mask
):
    model = tiny_model(seed=0).to(dtype)
    mask = random_mask(model)
    before = _snapshot(model)
    options = METHODS[method].Options(rmu_layer=1) if method == "rmu" else None
    data = _data(tokenizer, micro_splits)
    objective = METHODS[method](options)
    objective.encode(tokenizer, micro_splits["forget10"][:8], 48)  # as unlearn_model does
    _train(model, tokenizer, data, objective, mask, tmp_path)
    _assert_invariant(before, model, mask)


def test_invariant_holds_with_bf16_autocast_and_fused_adamw(
    tiny_model, tokenizer, micro_splits, tmp_path, random_mask
):
    model = tiny_model(seed=0)
    mask = random_mask(model, seed=1)
    before = _snapshot(model)
    data = _data(tokenizer, micro_splits)
    objective = METHODS["npo"]()
    _train(
        model, tokenizer, data, objective, mask, tmp_path, bf16=True, optimizer="adamw_torch_fused"
    )
    _assert_invariant(before, model, mask)


def test_dense_is_the_all_true_mask(tiny_model, tokenizer, micro_splits, tmp_path):
    """No mask and the all-True mask give bit-identical models."""
    data = _data(tokenizer, micro_splits)
    dense, all_true = tiny_model(seed=0), tiny_model(seed=0)
    _train(dense, tokenizer, data, METHODS["graddiff"](), None, tmp_path, steps=2)
    data = _data(tokenizer, micro_splits)
    _train(all_true, tokenizer, data, METHODS["graddiff"](), full_mask(all_true), tmp_path, steps=2)
    for (name, a), b in zip(dense.named_parameters(), all_true.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_ga_raises_forget_nll(tiny_model, tokenizer, micro_splits, tmp_path):
    model = tiny_model(seed=0)
    data = _data(tokenizer, micro_splits)
    batch = PairCollator(tokenizer.pad_token_id)([data[i] for i in range(len(data))])["forget"]
    with torch.no_grad():
        before = float(mean_nll(model, batch))
    trainer = _train(model, tokenizer, data, METHODS["ga"](), None, tmp_path, steps=4)
    with torch.no_grad():
        after = float(mean_nll(model.eval(), batch))
    assert after > before + 0.1
    assert [entry["step"] for entry in trainer.step_log] == [1, 2, 3, 4]
    assert {"loss", "forget_nll", "retain_nll", "lr"} <= set(trainer.step_log[0])


class _Exploding(Objective):
    def __call__(self, model, batch):
        nll = mean_nll(model, batch.forget)
        return {"loss": nll * float("nan"), "forget_nll": nll.detach()}


def test_non_finite_loss_stops_the_run(tiny_model, tokenizer, micro_splits, tmp_path):
    model = tiny_model(seed=0)
    with pytest.raises(WagleError, match="non-finite at step 1"):
        _train(model, tokenizer, _data(tokenizer, micro_splits), _Exploding(), None, tmp_path)


def test_mask_selecting_nothing_is_a_user_error(tiny_model, tokenizer, micro_splits, tmp_path):
    model = tiny_model(seed=0)
    empty = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
    with pytest.raises(WagleError, match="selects no trainable weight"):
        _train(model, tokenizer, _data(tokenizer, micro_splits), METHODS["ga"](), empty, tmp_path)
