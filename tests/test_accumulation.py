"""Gradient accumulation is explicit: each loss term is normalised over the whole optimizer
step in the unit its method declares, so accumulating micro-batches equals one larger batch."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainerCallback

from wagle.data.batching import encode_records
from wagle.unlearning import METHODS, MaskedUnlearningTrainer, PairCollator, PairedDataset
from wagle.unlearning.batch import ForgetRetainBatch
from wagle.unlearning.config import UnlearnConfig
from wagle.unlearning.run import training_arguments
from wagle.unlearning.scaling import counts, shares, step_loss, units_of


class _Gradients(TrainerCallback):
    """The complete gradient of every optimizer step (before the optimizer uses it)."""

    def __init__(self, model) -> None:
        self.model, self.steps = model, []

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        params = self.model.named_parameters()
        self.steps.append({n: p.grad.clone() for n, p in params if p.grad is not None})


def _train(tiny_model, tokenizer, splits, method, tmp_path, batch_size, accumulation):
    """Two optimizer steps of 4 forget samples each (answers of different lengths, so the
    token counts of the micro-batches differ), no clipping, fp32: (gradients, step log)."""
    model = tiny_model(seed=0)
    forget = encode_records(tokenizer, splits["forget10"][:8], max_length=128)
    retain = encode_records(tokenizer, splits["retain90"][:16], max_length=128)
    data = PairedDataset(forget, retain, seed=0)
    config = UnlearnConfig(
        model="-", forget="-", retain="-", out="-", method=method, max_steps=2,
        batch_size=batch_size, gradient_accumulation_steps=accumulation, learning_rate=1e-6,
        warmup=0, weight_decay=0.0, max_grad_norm=0.0, progress=False,
    )  # fmt: skip
    options = METHODS[method].Options(rmu_layer=1) if method == "rmu" else None
    objective = METHODS[method](options)
    objective.encode(tokenizer, splits["forget10"][:8], 128)  # IdkDPO's refusals
    gradients = _Gradients(model)
    trainer = MaskedUnlearningTrainer(
        model=model,
        args=training_arguments(config, str(tmp_path)),
        train_dataset=data,
        data_collator=PairCollator(tokenizer.pad_token_id, objective.companions()),
        objective=objective,
        callbacks=[gradients],
    )
    objective.prepare(model, data, tokenizer.pad_token_id)
    trainer.train()
    return gradients.steps, trainer.step_log


@pytest.mark.parametrize("method", sorted(METHODS))
def test_accumulating_two_batches_of_b_equals_one_batch_of_2b(
    method, tiny_model, tokenizer, micro_splits, tmp_path
):
    """Every method, 2 steps: accumulation 2 × batch 2 gives each step's gradient (to 1e-6 of
    the largest gradient entry at step 1, 1e-5 at step 2) and step log of batch 4 (a wrong
    normalisation is off by ~1e-2). GA, GradDiff, PO are token means (the micro-batches hold
    different numbers of answer tokens, so averaging their means would differ); NPO and SimNPO
    per-sequence means; RMU a mean over non-padding positions. Adam's first update is ±lr
    wherever the gradient is ~0, so it carries rounding differences of step 1 into step 2's
    gradients: a small learning rate and a looser step-2 tolerance."""
    accumulated, log_a = _train(tiny_model, tokenizer, micro_splits, method, tmp_path, 2, 2)
    single, log_s = _train(tiny_model, tokenizer, micro_splits, method, tmp_path, 4, 1)
    assert len(accumulated) == len(single) == 2
    for tolerance, step_a, step_s in zip((1e-6, 1e-5), accumulated, single, strict=True):
        scale = max(float(g.abs().max()) for g in step_s.values())
        for name, grad in step_s.items():
            assert float((step_a[name] - grad).abs().max()) <= tolerance * scale, name
    for entry_a, entry_s in zip(log_a, log_s, strict=True):
        for key in entry_s:
            assert entry_a[key] == pytest.approx(entry_s[key], rel=1e-5, abs=1e-6), key


def test_every_method_names_the_parts_of_its_loss_and_their_units(tokenizer, micro_splits):
    """The parts a method declares sum to its loss, and each has a known unit (a part left
    out would not be trained on)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                    num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)
    )  # fmt: skip
    forget = encode_records(tokenizer, micro_splits["forget10"][:4], max_length=128)
    retain = encode_records(tokenizer, micro_splits["retain90"][:4], max_length=128)
    data = PairedDataset(forget, retain)
    for name, method in METHODS.items():
        options = method.Options(rmu_layer=1) if name == "rmu" else None
        objective = method(options)
        objective.encode(tokenizer, micro_splits["forget10"][:4], 128)
        objective.prepare(model, data, 0)
        collate = PairCollator(0, objective.companions())
        batch = ForgetRetainBatch.from_inputs(collate([data[i] for i in range(4)]))
        terms = objective(model, batch)
        assert set(objective.normalised_by.values()) <= set(units_of(objective)), name
        parts = sum(terms[part] for part in objective.normalised_by)
        torch.testing.assert_close(parts, terms["loss"], msg=name)


def test_a_micro_batch_term_is_scaled_by_its_share_of_the_step():
    """A micro-batch with 3 of the step's 12 forget answer tokens and 1 of its 4 samples: a
    token-mean term 2.0 contributes 2·3/12 = 0.5, a per-sample term 8.0 contributes 8·1/4 = 2."""
    forget = {
        "input_ids": torch.ones(1, 5, dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 0]]),
        "labels": torch.tensor([[-100, 7, 7, 7, -100]]),  # 3 labelled next-token positions
    }
    micro = counts(forget, forget)
    assert micro.tolist() == [3, 3, 4, 4, 1]
    step = torch.tensor([12.0, 6.0, 20.0, 20.0, 4.0])
    terms = {"forget": torch.tensor(2.0), "retain": torch.tensor(8.0)}
    share = shares(micro, step)
    loss = step_loss(terms, {"forget": "forget_tokens", "retain": "sequences"}, share)
    assert float(loss) == pytest.approx(0.5 + 2.0)
    unscaled = step_loss(terms, {"forget": "forget_tokens"}, shares(micro, None))
    assert float(unscaled) == 2.0  # outside a step (no counts): the micro-batch's own mean
