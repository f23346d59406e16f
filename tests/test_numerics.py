"""Numerics of masked training: non-finite gradients outside the mask, the optimizers offered,
NPO's reference in the training precision, and ``verify`` catching a weight that moved."""

from __future__ import annotations

import json
import math

import pytest
import torch

from wagle.errors import WagleError
from wagle.unlearning import METHODS, MaskEnforcer, UnlearnConfig, unlearn


def _two_params():
    model = torch.nn.Linear(3, 2, bias=True)
    mask = {
        "weight": torch.tensor([[True, False, True], [False, False, True]]),
        "bias": torch.tensor([True, True]),
    }
    return model, mask


def test_an_infinite_gradient_outside_the_mask_becomes_zero_not_nan():
    """inf·0 = NaN, so a multiply would poison the clipping norm; a fill gives exactly 0."""
    model, mask = _two_params()
    enforcer = MaskEnforcer(model, mask)
    inf, nan = float("inf"), float("nan")
    model.weight.grad = torch.tensor([[1.0, inf, 2.0], [nan, -inf, inf]])
    enforcer.zero_unselected_grads()
    expected = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, inf]])
    assert torch.equal(model.weight.grad, expected)


def test_sgd_is_not_offered():
    """SGD's weight decay is coupled L2 inside the optimizer: it could not be masked exactly."""
    with pytest.raises(WagleError, match="optimizer 'sgd' is not supported"):
        UnlearnConfig(model="m", forget="f", retain="r", out="o", optimizer="sgd")


def test_verify_catches_an_unselected_weight_that_moved():
    model, mask = _two_params()
    enforcer = MaskEnforcer(model, mask)
    enforcer.verify()  # nothing moved yet
    with torch.no_grad():
        model.weight[1, 0] = torch.nextafter(model.weight[1, 0], torch.tensor(math.inf))
    with pytest.raises(WagleError, match="masked weights changed in 1 parameter"):
        enforcer.verify()


def test_verify_catches_a_frozen_parameter_that_moved():
    model, mask = _two_params()
    mask["bias"][:] = False  # nothing selected: frozen
    enforcer = MaskEnforcer(model, mask)
    with torch.no_grad():
        model.bias.add_(1e-3)
    with pytest.raises(WagleError, match="a frozen parameter"):
        enforcer.verify()


@pytest.mark.parametrize("reference", ["precomputed", "live"])
def test_npo_log_ratio_is_zero_at_step_one_under_bf16(tmp_path, saved_inputs, reference):
    """Under bf16 autocast the first step's model equals the reference, so every log-ratio is
    0 and the NPO term is −(2/β)·log σ(0) = (2/β)·ln 2 = 20·0.693147 = 13.8629 (β = 0.1),
    exactly when the reference NLLs were computed in the training precision too (precomputed
    once, or by a live frozen copy of the model)."""
    saved_inputs(n_retain=8)
    config = UnlearnConfig(
        model=str(tmp_path / "model"), forget=str(tmp_path / "forget.jsonl"),
        retain=str(tmp_path / "retain.jsonl"), out=str(tmp_path / "out"), max_steps=1,
        batch_size=4, gradient_accumulation_steps=2, bf16=True, progress=False, max_length=48,
    )  # fmt: skip
    result = unlearn(config, METHODS["npo"].Options(reference=reference))
    first = result.step_log[0]
    assert first["forget"] == pytest.approx(20 * math.log(2), abs=1e-5)
    log = json.loads((tmp_path / "out" / "training_log.json").read_text())["steps"]
    assert log[0]["forget"] == first["forget"]
