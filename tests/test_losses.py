"""Every unlearning loss equals a hand computation on a tiny batch.

The stub model below predicts a uniform distribution over V = 4 tokens at every position, so
every answer token costs NLL = ln 4 = 1.386294, a sequence with n answer tokens n·ln 4, and
every hidden state is 0. Forget batch: answers of 2 and 4 tokens; retain batch: 3 tokens.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from wagle.data.batching import encode_records
from wagle.unlearning.batch import ForgetRetainBatch, PairCollator, PairedDataset
from wagle.unlearning.methods.npo import NPO, NPOOptions, npo_loss
from wagle.unlearning.methods.po import POOptions
from wagle.unlearning.methods.rmu import RMUOptions
from wagle.unlearning.objective import METHODS, RetainOptions, token_kl

LN4 = math.log(4)
V, H = 4, 4


class UniformLM(torch.nn.Module):
    """Logits 0 (uniform over V) and hidden states 0, plus a zero-valued parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(()))
        self.config = SimpleNamespace(num_hidden_layers=2, hidden_size=H)

    @property
    def device(self) -> torch.device:
        return self.bias.device

    def forward(self, input_ids, attention_mask, output_hidden_states=False):
        b, t = input_ids.shape
        hidden = tuple(torch.zeros(b, t, H) + self.bias for _ in range(3))
        return SimpleNamespace(logits=torch.zeros(b, t, V) + self.bias, hidden_states=hidden)


def _qa(n_prompt: int, n_answer: int, width: int) -> dict[str, list[int]]:
    ids = [1] * (n_prompt + n_answer) + [0] * (width - n_prompt - n_answer)
    labels = [-100] * n_prompt + [2] * n_answer + [-100] * (width - n_prompt - n_answer)
    mask = [1] * (n_prompt + n_answer) + [0] * (width - n_prompt - n_answer)
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _batch(*samples: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([s[k] for s in samples]) for k in samples[0]}


@pytest.fixture
def batch() -> ForgetRetainBatch:
    forget = _batch(_qa(2, 2, 7), _qa(2, 4, 7))  # summed NLL: 2·ln4, 4·ln4
    retain = _batch(_qa(3, 3, 7), _qa(3, 3, 7))
    return ForgetRetainBatch(forget, retain, torch.tensor([0, 1]))


def test_every_method_takes_its_options_from_the_light_options_module():
    """``METHOD_OPTIONS`` (no torch: configs and --help) names the registered methods, each
    with the ``Options`` it is built with."""
    from wagle.unlearning.options import METHOD_OPTIONS

    assert sorted(METHOD_OPTIONS) == sorted(METHODS)
    assert {name: METHODS[name].Options for name in METHODS} == METHOD_OPTIONS


def _loss(name: str, batch: ForgetRetainBatch, options=None, ref_nll=None) -> float:
    objective = METHODS[name](options)
    model = UniformLM()
    if ref_nll is not None:
        objective.ref_nll = torch.tensor(ref_nll)
    else:
        objective.prepare(model, None, 0)
    return float(objective(model, batch)["loss"].detach())


def test_ga_is_minus_token_mean_nll(batch):
    """GA = −mean NLL = −ln 4 = −1.386294."""
    assert _loss("ga", batch) == pytest.approx(-LN4, abs=1e-6)


def test_graddiff_adds_weighted_retain_nll(batch):
    """GradDiff, λ = 2: −ln 4 + 2·ln 4 = ln 4 = 1.386294."""
    assert _loss("graddiff", batch, RetainOptions(retain_weight=2.0)) == pytest.approx(
        LN4, abs=1e-6
    )


def test_npo_at_the_reference_is_2_ln2_over_beta_plus_retain(batch):
    """θ = ref: −(2/0.1)·log σ(0) = 20·ln 2 = 13.862944; + λ·ln 4 → 15.249238."""
    loss = _loss("npo", batch, ref_nll=[2 * LN4, 4 * LN4])
    assert loss == pytest.approx(20 * math.log(2) + LN4, abs=1e-5)


def test_npo_uses_summed_nll_minus_reference(batch):
    """ref = NLL − 10, β = 0.1: β·Δ = 1, −20·log σ(1) = 20·ln(1 + e^−1) = 6.265233; λ = 0."""
    options = NPOOptions(retain_weight=0.0)
    loss = _loss("npo", batch, options, ref_nll=[2 * LN4 - 10, 4 * LN4 - 10])
    assert loss == pytest.approx(20 * math.log1p(math.exp(-1)), abs=1e-5)


def test_npo_loss_formula_on_unequal_margins():
    """β = 1, NLL − ref = [0, 2]: −2·mean(log σ(0), log σ(2)) = ln 2 + ln(1 + e^−2) = 0.820075."""
    loss = npo_loss(torch.tensor([5.0, 7.0]), torch.tensor([5.0, 5.0]), beta=1.0)
    assert float(loss) == pytest.approx(math.log(2) + math.log1p(math.exp(-2)), abs=1e-6)


def test_simnpo_uses_length_normalised_nll(batch):
    """β = 2.5, δ = 0, mean NLL ln 4: −0.8·log σ(2.5·ln 4) = 0.8·ln(1 + 4^−2.5) = 0.8·ln(1.03125)
    = 0.024617; + λ·ln 4 (λ = 1) → 1.410911."""
    assert _loss("simnpo", batch) == pytest.approx(0.8 * math.log(1.03125) + LN4, abs=1e-6)


def test_po_is_nll_of_the_refusal_batch_plus_retain(batch):
    """The forget batch carries refusals: ln 4 + 0.5·ln 4 = 2.079442."""
    assert _loss("po", batch, POOptions(retain_weight=0.5)) == pytest.approx(1.5 * LN4, abs=1e-6)


def test_rmu_pulls_forget_states_toward_c_u(batch):
    """h = 0 and h_ref = h: forget ‖0 − c·u‖²/H = c²/H = 6.5²/4 = 10.5625, retain 0."""
    assert _loss("rmu", batch, RMUOptions(rmu_layer=1)) == pytest.approx(10.5625, rel=1e-6)


def test_kl_retain_term_by_hand():
    """q = (1/2, 1/2) (original), p = (3/4, 1/4) (model):
    KL(q‖p) = ½·ln(2/3) + ½·ln 2 = 0.143841."""
    ref = torch.zeros(1, 2, 2)
    logits = torch.tensor([[[math.log(3), 0.0], [0.0, 0.0]]])
    labels = torch.tensor([[-100, 1]])
    expected = 0.5 * math.log(2 / 3) + 0.5 * math.log(2)
    assert float(token_kl(ref, logits, labels)) == pytest.approx(expected, abs=1e-6)


def test_kl_retain_is_zero_at_the_original_model(batch):
    """GradDiff with the KL retain term: −ln 4 + λ·0."""
    options = RetainOptions(retain_loss="kl")
    assert _loss("graddiff", batch, options) == pytest.approx(-LN4, abs=1e-6)


def test_npo_precomputed_reference_equals_live_reference(tiny_model, tokenizer, micro_splits):
    """Reference NLLs computed once before training give the loss a live copy gives, also after
    the model moved away from the reference."""
    model = tiny_model(seed=1)
    examples = encode_records(tokenizer, micro_splits["forget10"][:6])
    data = PairedDataset(examples, encode_records(tokenizer, micro_splits["retain90"][:6]))
    precomputed = NPO(NPOOptions(reference="precomputed"))
    live = NPO(NPOOptions(reference="live"))
    precomputed.prepare(model, data, tokenizer.pad_token_id)
    live.prepare(model, data, tokenizer.pad_token_id)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    batch = ForgetRetainBatch.from_inputs(
        PairCollator(tokenizer.pad_token_id)([data[i] for i in (4, 1, 3)])
    )
    torch.testing.assert_close(precomputed(model, batch)["loss"], live(model, batch)["loss"])
