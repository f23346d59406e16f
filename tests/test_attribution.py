"""The attribution pipeline: passes over the data, sampling, targets, eligibility, model state."""

from __future__ import annotations

import pytest
import torch

from wagle.attribution import AttributionConfig, attribute
from wagle.data.refusals import refusal_records
from wagle.errors import WagleError


@pytest.fixture
def forget(micro_splits):
    return micro_splits["forget10"][:7]


@pytest.fixture
def retain(micro_splits):
    return micro_splits["retain90"][:30]


class PassCounter:
    """Counts forward calls, samples forwarded and backward passes of a model."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.forwards = self.samples = self.backwards = 0
        model.register_forward_pre_hook(self._forward, with_kwargs=True)
        model.model.norm.register_full_backward_hook(self._backward)

    def _forward(self, _module, _args, kwargs):
        self.forwards += 1
        self.samples += kwargs["input_ids"].shape[0]

    def _backward(self, *_):
        self.backwards += 1


def test_wagle_does_one_forward_backward_pass_over_forget_and_one_over_retain(
    tiny_model, tokenizer, forget, retain
):
    """7 forget + 7 drawn retain samples in batches of 3: 3 + 3 batches, each sample once."""
    model = tiny_model()
    counter = PassCounter(model)
    config = AttributionConfig(
        method="wagle", gamma=[1e-6, 1e-3, 1e2], ratio=[0.5, 0.9], batch_size=3
    )
    result = attribute(model, tokenizer, forget, retain, config, progress=False)
    for gamma in result.gammas:  # a γ × ρ sweep costs no further pass
        scores = result.scores(gamma)
        for ratio in config.ratio:
            result.select(scores, ratio)
    assert (counter.forwards, counter.samples, counter.backwards) == (6, 14, 6)


def test_wanda_needs_one_forward_pass_over_forget_only(tiny_model, tokenizer, forget, retain):
    model = tiny_model()
    counter = PassCounter(model)
    config = AttributionConfig(method="wanda", batch_size=3)
    attribute(model, tokenizer, forget, retain, config, progress=False).scores()
    assert (counter.forwards, counter.samples, counter.backwards) == (3, 7, 0)


def test_gradients_do_not_depend_on_batch_size(tiny_model, tokenizer, forget, retain):
    model = tiny_model()
    one, many = (
        attribute(model, tokenizer, forget, retain, AttributionConfig(batch_size=b), progress=False)
        for b in (1, 5)
    )
    for name, g in one.stats.forget_grad.items():
        torch.testing.assert_close(many.stats.forget_grad[name], g, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(many.stats.retain_grad[name], one.stats.retain_grad[name])


def test_the_model_is_left_as_it_was_found(tiny_model, tokenizer, forget, retain):
    model = tiny_model().train()
    model.model.embed_tokens.weight.requires_grad_(False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    attribute(model, tokenizer, forget, retain, AttributionConfig(), progress=False)
    assert model.training
    assert not model.model.embed_tokens.weight.requires_grad
    for name, p in model.named_parameters():
        assert p.grad is None
        assert torch.equal(p, before[name])


def test_a_bf16_model_accumulates_gradients_in_fp32(tiny_model, tokenizer, forget, retain):
    model = tiny_model()
    reference = attribute(model, tokenizer, forget, retain, AttributionConfig(), progress=False)
    half = attribute(
        model.to(torch.bfloat16), tokenizer, forget, retain, AttributionConfig(), progress=False
    )
    g, g_ref = (
        half.stats.forget_grad["lm_head.weight"],
        reference.stats.forget_grad["lm_head.weight"],
    )
    assert g.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(g.flatten(), g_ref.flatten(), dim=0) > 0.99


def test_the_refusal_target_scores_refusal_answers(tiny_model, tokenizer, forget, retain):
    model = tiny_model()
    config = AttributionConfig(method="snip", forget_target="refusal", seed=5)
    by_option = attribute(model, tokenizer, forget, retain, config, progress=False)
    swapped = refusal_records(forget, seed=5)
    by_hand = attribute(
        model, tokenizer, swapped, retain, AttributionConfig(method="snip"), progress=False
    )
    assert all(
        torch.equal(by_option.stats.forget_grad[n], g) for n, g in by_hand.stats.forget_grad.items()
    )


@pytest.mark.parametrize(
    ("max_samples", "retain_samples", "expected"),
    [(0, 0, (7, 7)), (4, 0, (4, 4)), (0, -1, (7, 30)), (5, 12, (5, 12)), (0, 99, (7, 30))],
)
def test_sample_counts_follow_the_caps_and_are_recorded(
    tiny_model, tokenizer, forget, retain, max_samples, retain_samples, expected
):
    """retain_samples 0 = as many as forget samples (published), -1 = all; caps never exceed."""
    config = AttributionConfig(max_samples=max_samples, retain_samples=retain_samples)
    result = attribute(tiny_model(), tokenizer, forget, retain, config, progress=False)
    meta = result.metadata(0.5, 1e-6, result.scores())
    assert (meta["n_forget"], meta["n_retain"]) == expected


def test_text_forget_data_is_scored_on_every_token(tiny_model, tokenizer, micro_splits):
    texts = [r["question"] + " " + r["answer"] for r in micro_splits["forget10"][:3]]
    config = AttributionConfig(method="gradient")
    result = attribute(tiny_model(), tokenizer, texts, [], config, progress=False)
    assert result.stats.n_forget == 3
    assert float(result.stats.forget_grad["model.embed_tokens.weight"].abs().sum()) > 0


def test_block_linear_eligibility_selects_only_linear_weights_of_the_blocks(
    tiny_model, tokenizer, forget, retain
):
    model = tiny_model()
    config = AttributionConfig(eligible="block-linear", ratio=[1.0])
    result = attribute(model, tokenizer, forget, retain, config, progress=False)
    scores = result.scores()
    mask = result.select(scores, 1.0)
    selected = {n for n, m in mask.items() if m.any()}
    assert list(mask) == [n for n, _ in model.named_parameters()]  # every parameter present
    assert selected == {
        n for n, _ in model.named_parameters() if n.startswith("model.layers.") and "proj" in n
    }
    assert result.metadata(1.0, 1e-6, scores)["n_eligible"] == sum(
        int(m.sum()) for m in mask.values()
    )


def test_an_eligible_pattern_narrows_the_preset(tiny_model, tokenizer, forget, retain):
    config = AttributionConfig(method="magnitude", eligible_pattern=r"\.mlp\.")
    result = attribute(tiny_model(), tokenizer, forget, retain, config, progress=False)
    assert all(".mlp." in n for n in result.scores())


def test_an_empty_forget_set_is_an_error(tiny_model, tokenizer, retain):
    with pytest.raises(WagleError, match="forget set is empty"):
        attribute(tiny_model(), tokenizer, [], retain, AttributionConfig(), progress=False)


def test_wagle_without_retain_data_is_an_error(tiny_model, tokenizer, forget):
    with pytest.raises(WagleError, match="needs retain data"):
        attribute(tiny_model(), tokenizer, forget, [], AttributionConfig(), progress=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ratio": [0.0]}, r"ratio must be in \(0, 1\]"),
        ({"ratio": [0.5, 1.5]}, r"ratio must be in \(0, 1\]"),
        ({"gamma": [0.0]}, "gamma must be > 0"),
        ({"method": "snip", "gamma": [1e-6, 1e-3]}, "has no γ"),
        ({"eligible": "attention"}, "choose one of: all, block-linear, linear"),
        ({"eligible_pattern": "("}, "not a valid regex"),
        ({"forget_target": "refusal", "retain_samples": -2}, "retain_samples ≥ -1"),
    ],
)
def test_invalid_options_fail_when_the_config_is_built(options, message):
    with pytest.raises(WagleError, match=message):
        AttributionConfig(**options)
