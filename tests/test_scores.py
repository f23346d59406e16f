"""Score functions against references computed here from autograd on the whole data at once."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from wagle.attribution import AttributionConfig, attribute, select_mask
from wagle.data.batching import encode_records
from wagle.errors import WagleError

N = 6  # forget samples; the retain set below has exactly N records, so all of it is used


@pytest.fixture
def data(micro_splits):
    return micro_splits["forget10"][:N], micro_splits["retain90"][:N]


def per_sample_grads(model, tokenizer, records) -> list[dict[str, torch.Tensor]]:
    """∇ of each sample's mean answer-token NLL, one unpadded sample at a time."""
    params = dict(model.named_parameters())
    grads = []
    for example in encode_records(tokenizer, records):
        ids = torch.tensor([example["input_ids"]])
        labels = torch.tensor(example["labels"])
        logits = model(input_ids=ids).logits[0]
        loss = F.cross_entropy(logits[:-1], labels[1:], ignore_index=-100)  # mean over answer
        grads.append(
            dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
        )
    return grads


def summed(grads: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {name: sum(g[name] for g in grads) for name in grads[0]}


def scores_of(model, tokenizer, data, **options):
    config = AttributionConfig(batch_size=4, **options)  # 4 ≠ N: padding and a short batch
    result = attribute(model, tokenizer, *data, config, progress=False)
    return result.scores(config.gamma[0])


def assert_scores_close(actual, expected):
    assert list(actual) == list(expected)
    for name in expected:
        scale = float(expected[name].abs().max())
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-5 * scale)


def test_wagle_score_equals_the_autograd_reference(tiny_model, tokenizer, data):
    """S = |(θ − g_r/γ)·g_f| with g = Σ_i ∇ mean-NLL_i over all forget / retain samples."""
    model = tiny_model(seed=1)
    g_f = summed(per_sample_grads(model, tokenizer, data[0]))
    g_r = summed(per_sample_grads(model, tokenizer, data[1]))
    gamma = 1e-6
    expected = {
        n: ((p.detach() - g_r[n] / gamma) * g_f[n]).abs() for n, p in model.named_parameters()
    }
    assert_scores_close(scores_of(model, tokenizer, data, method="wagle", gamma=[gamma]), expected)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_wagle_fisher_uses_summed_squared_per_sample_gradients_at_any_batch_size(
    tiny_model, tokenizer, data, batch_size
):
    """S = |(θ − g_r/(Σ_i g_r,i² + γ))·g_f|, γ the damping: per-sample squares whatever the
    batch size (squaring a batch's summed gradient would add cross-sample products)."""
    model = tiny_model(seed=2)
    g_f = summed(per_sample_grads(model, tokenizer, data[0]))
    retain = per_sample_grads(model, tokenizer, data[1])
    g_r, fisher = summed(retain), summed([{n: g * g for n, g in s.items()} for s in retain])
    gamma = 1e-3
    expected = {
        n: ((p.detach() - g_r[n] / (fisher[n] + gamma)) * g_f[n]).abs()
        for n, p in model.named_parameters()
    }
    config = AttributionConfig(method="wagle-fisher", gamma=[gamma], batch_size=batch_size)
    actual = attribute(model, tokenizer, *data, config, progress=False).scores(gamma)
    assert_scores_close(actual, expected)


@pytest.mark.parametrize(
    ("method", "formula"),
    [
        ("snip", lambda theta, g_f: (theta * g_f).abs()),
        ("gradient", lambda theta, g_f: g_f.abs()),
        ("magnitude", lambda theta, g_f: theta.abs()),
    ],
)
def test_baseline_scores_equal_their_formulas(tiny_model, tokenizer, data, method, formula):
    model = tiny_model(seed=3)
    g_f = summed(per_sample_grads(model, tokenizer, data[0]))
    expected = {n: formula(p.detach(), g_f[n]) for n, p in model.named_parameters()}
    assert_scores_close(scores_of(model, tokenizer, data, method=method), expected)


def test_wanda_is_weight_magnitude_times_input_norm_of_linear_layers(tiny_model, tokenizer, data):
    """S_ij = |W_ij|·sqrt(Σ_tokens x_j²), x the layer's input on every real forget token."""
    model = tiny_model(seed=4)
    layer = model.model.layers[1].mlp.down_proj
    inputs = []
    handle = layer.register_forward_hook(lambda _m, args, _o: inputs.append(args[0][0]))
    with torch.no_grad():
        for example in encode_records(tokenizer, data[0]):
            model(input_ids=torch.tensor([example["input_ids"]]))
    handle.remove()
    norm = torch.cat(inputs).square().sum(dim=0).sqrt()  # [in_features]

    scores = scores_of(model, tokenizer, data, method="wanda")
    expected = layer.weight.detach().abs() * norm
    torch.testing.assert_close(scores["model.layers.1.mlp.down_proj.weight"], expected)
    linear = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert {n.removesuffix(".weight") for n in scores} == linear  # norms/embeddings unscored


def test_wagle_with_huge_gamma_ranks_like_snip(tiny_model, tokenizer, data):
    """γ → ∞: g_r/γ → 0, so |(θ − g_r/γ)·g_f| → |θ·g_f|."""
    model = tiny_model(seed=5)
    wagle = scores_of(model, tokenizer, data, method="wagle", gamma=[1e30])
    snip = scores_of(model, tokenizer, data, method="snip")
    for ratio in (0.05, 0.3, 0.8):
        assert _equal_masks(select_mask(wagle, ratio), select_mask(snip, ratio))


def test_wagle_with_tiny_gamma_ranks_by_the_gradient_product(tiny_model, tokenizer, data):
    """γ → 0: |(θ − g_r/γ)·g_f| ≈ |g_r·g_f|/γ, a positive multiple of |g_r·g_f|."""
    model = tiny_model(seed=6)
    wagle = scores_of(model, tokenizer, data, method="wagle", gamma=[1e-12])
    g_f = summed(per_sample_grads(model, tokenizer, data[0]))
    g_r = summed(per_sample_grads(model, tokenizer, data[1]))
    product = {n: (g_r[n] * g_f[n]).abs() for n in g_f}
    a, b = select_mask(wagle, 0.3), select_mask(product, 0.3)
    both = sum(int((a[n] & b[n]).sum()) for n in a)
    assert both / sum(int(a[n].sum()) for n in a) > 0.99  # fp noise in the two sums of g


def test_random_scores_depend_only_on_the_seed(tiny_model, tokenizer, data):
    model = tiny_model(seed=7)
    first = scores_of(model, tokenizer, data, method="random", seed=3)
    again = scores_of(model, tokenizer, data, method="random", seed=3)
    other = scores_of(model, tokenizer, data, method="random", seed=4)
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not torch.equal(first["lm_head.weight"], other["lm_head.weight"])


def test_an_unknown_method_is_an_error_that_lists_the_choices():
    with pytest.raises(WagleError, match="choose one of: gradient, magnitude, random, snip"):
        AttributionConfig(method="salun")


def test_the_light_config_names_every_registered_choice():
    """``AttributionConfig`` checks names without torch, against lists that must match the
    registries: a method added to one and not the other fails here."""
    from wagle.attribution import GRANULARITIES, SCORES, config
    from wagle.attribution.eligible import ELIGIBLE
    from wagle.attribution.gradients import SUM_PLACES

    assert tuple(SCORES) == config.SCORE_METHODS
    assert tuple(n for n, m in SCORES.items() if m.uses_gamma) == config.GAMMA_METHODS
    assert tuple(GRANULARITIES) == config.GRANULARITY_NAMES
    assert tuple(ELIGIBLE) == config.ELIGIBLE_PRESETS
    assert tuple(SUM_PLACES) == config.GRADIENT_SUMS


def _equal_masks(a, b) -> bool:
    return list(a) == list(b) and all(torch.equal(a[n], b[n]) for n in a)


def test_scores_are_computed_when_read_and_not_kept(tiny_model, tokenizer, data):
    """``scores()`` holds no score tensor; selecting from it equals selecting from the
    materialised dict, and reading a tensor twice gives the same values."""
    model = tiny_model(seed=8)
    lazy = scores_of(model, tokenizer, data, method="wagle")
    assert not any(isinstance(v, torch.Tensor) for v in vars(lazy).values())
    eager = {name: lazy[name] for name in lazy}
    assert all(torch.equal(lazy[n], eager[n]) for n in eager)
    for granularity in ("global", "tensor", "row"):
        assert _equal_masks(
            select_mask(lazy, 0.3, granularity), select_mask(eager, 0.3, granularity)
        )


@pytest.mark.parametrize("sums", ["float32-cpu", "model-dtype"])
def test_gradient_sums_can_live_on_cpu_or_in_the_model_dtype(tiny_model, tokenizer, data, sums):
    model = tiny_model(seed=9).to(torch.bfloat16)
    reference = attribute(model, tokenizer, *data, AttributionConfig(), progress=False).stats
    other = attribute(
        model, tokenizer, *data, AttributionConfig(gradient_sums=sums), progress=False
    ).stats
    g, g_ref = other.forget_grad["lm_head.weight"], reference.forget_grad["lm_head.weight"]
    assert (g.device.type, g.dtype) == (
        ("cpu", torch.float32) if sums == "float32-cpu" else ("cpu", torch.bfloat16)
    )
    if sums == "float32-cpu":
        assert torch.equal(g, g_ref)
    else:
        assert (
            torch.nn.functional.cosine_similarity(g.float().flatten(), g_ref.flatten(), dim=0)
            > 0.999
        )


def test_gradient_checkpointing_gives_the_same_scores(tiny_model, tokenizer, data):
    """Checkpointing recomputes each layer in backward (its MLP runs twice per batch: 2
    forget + 2 retain batches of 4 and 2), same sums to fp32 rounding; the model's own mode and
    checkpointing flag are left as they were."""
    model = tiny_model(seed=10)
    calls = []
    mlp, forward = model.model.layers[0].mlp, model.model.layers[0].mlp.forward
    mlp.forward = lambda x: (calls.append(1), forward(x))[1]  # hooks do not see recomputes
    plain = {n: s for n, s in scores_of(model, tokenizer, data, method="wagle").items()}
    assert len(calls) == 4
    with warnings.catch_warnings():  # transformers 5.x's deprecated names are not used
        warnings.simplefilter("error", FutureWarning)
        saved = scores_of(model, tokenizer, data, method="wagle", gradient_checkpointing=True)
    assert len(calls) == 4 + 8
    assert_scores_close(saved, plain)
    assert not model.training and not model.is_activation_checkpointing
