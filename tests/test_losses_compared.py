"""The methods users compare against (IdkDPO, UNDIAL, WGA, SatImp, CE-U): each loss equals a
hand computation.

``FixedLM`` returns the same logits for every sequence: V = 2 tokens, position 0 predicts
p = (3/4, 1/4) (logits (ln 3, 0)), position 1 predicts p = (1/2, 1/2). Forget and retain
batches are one sequence of 3 tokens with labels (-100, 0, 1): the answer tokens are token 0
at position 1 (p = 3/4, NLL = ln 4/3 = 0.287682) and token 1 at position 2 (p = 1/2,
NLL = ln 2 = 0.693147); their token-mean NLL is 0.490415.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from wagle.data.batching import encode_records
from wagle.data.refusals import REFUSALS
from wagle.unlearning.batch import ForgetRetainBatch, PairCollator, PairedDataset
from wagle.unlearning.methods.ceu import without_first_answer_tokens
from wagle.unlearning.methods.idkdpo import dpo_loss
from wagle.unlearning.objective import METHODS

LN2, LN43 = math.log(2), math.log(4 / 3)
RETAIN_NLL = (LN43 + LN2) / 2  # 0.490415


class FixedLM(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(()))
        self.register_buffer("table", torch.tensor([[math.log(3), 0.0], [0.0, 0.0], [0.0, 0.0]]))

    def forward(self, input_ids, attention_mask):
        b, t = input_ids.shape
        return SimpleNamespace(logits=self.table[:t].expand(b, t, 2) + self.bias)


def _batch() -> ForgetRetainBatch:
    one = {
        "input_ids": torch.tensor([[1, 0, 1]]),
        "attention_mask": torch.ones(1, 3, dtype=torch.long),
        "labels": torch.tensor([[-100, 0, 1]]),
    }
    return ForgetRetainBatch(one, dict(one), torch.tensor([0]))


def _loss(method: str, **options) -> float:
    objective = METHODS[method](METHODS[method].Options(**options))
    model = FixedLM()
    if method != "idkdpo":
        objective.prepare(model, None, 0)
    return float(objective(model, _batch())["loss"].detach())


def test_wga_weights_each_token_nll_by_its_probability():
    """β = 1, λ = 0: −mean(3/4·ln 4/3, 1/2·ln 2) = −(0.215762 + 0.346574)/2 = −0.281168."""
    assert _loss("wga", retain_weight=0.0) == pytest.approx(-0.281168, abs=1e-6)


def test_wga_adds_the_weighted_retain_nll():
    """λ = 2: −0.281168 + 2·0.490415 = 0.699661."""
    assert _loss("wga", retain_weight=2.0) == pytest.approx(-0.281168 + 2 * RETAIN_NLL, abs=1e-6)


def test_wga_power_zero_is_gradient_ascent():
    """β = 0: every weight is 1, the loss is −mean NLL = −0.490415."""
    assert _loss("wga", retain_weight=0.0, wga_power=0.0) == pytest.approx(-RETAIN_NLL, abs=1e-6)


def test_satimp_weights_by_saturation_times_importance():
    """β₁ = β₂ = 1, γ = 1, λ = 0: weights p(1 − p) = 3/16, 1/4:
    −mean(0.1875·0.287682, 0.25·0.693147) = −(0.053940 + 0.173287)/2 = −0.113614."""
    loss = _loss("satimp", retain_weight=0.0, forget_weight=1.0, sat_power=1.0, imp_power=1.0)
    assert loss == pytest.approx(-0.113614, abs=1e-6)


def test_satimp_defaults_are_open_unlearnings_recipe():
    """β₁ = 5, β₂ = 1, γ = 0.1, λ = 1: weights (3/4)⁵·1/4 = 0.059326, (1/2)⁵·1/2 = 0.015625;
    −0.1·(0.059326·0.287682 + 0.015625·0.693147)/2 = −0.001395; + 0.490415 = 0.489020."""
    assert _loss("satimp") == pytest.approx(-0.0013948762 + RETAIN_NLL, abs=1e-7)


def test_ceu_is_the_cross_entropy_to_the_distribution_without_the_true_token():
    """No token skipped: position 1 target (0, 1), CE = −ln 1/4 = ln 4; position 2 target (1, 0),
    CE = −ln 1/2 = ln 2; mean 3/2·ln 2 = 1.039721 (no retain term)."""
    assert _loss("ceu", ignore_first_answer_tokens=0) == pytest.approx(1.5 * LN2, abs=1e-6)


def test_ceu_leaves_out_the_first_answer_token_by_default():
    """The first answer token is skipped: only position 2 counts, ln 2 = 0.693147."""
    assert _loss("ceu") == pytest.approx(LN2, abs=1e-6)


def test_ceu_skips_the_first_n_labelled_tokens_of_each_row():
    labels = torch.tensor([[-100, -100, 5, 6, 7], [-100, 8, 9, -100, -100]])
    expected = torch.tensor([[-100, -100, -100, 6, 7], [-100, -100, 9, -100, -100]])
    assert torch.equal(without_first_answer_tokens(labels, 1), expected)


def test_undial_distils_towards_the_original_with_the_true_logit_lowered():
    """β = ln 3, the original model = the model. Position 1: teacher (ln 3, 0) − (ln 3, 0) →
    q = (1/2, 1/2), CE to p = (3/4, 1/4) = ½(ln 4/3 + ln 4) = 0.836988; position 2: (0, 0) −
    (0, ln 3) → q = (3/4, 1/4), CE to (1/2, 1/2) = ln 2; mean 0.765068 (λ = 0 by default)."""
    loss = _loss("undial", undial_strength=math.log(3))
    assert loss == pytest.approx(((LN43 + math.log(4)) / 2 + LN2) / 2, abs=1e-6)


def test_undial_with_zero_strength_is_the_entropy_of_the_original():
    """β = 0: q = p, CE = entropy: position 1 −(¾ ln ¾ + ¼ ln ¼) = 0.562335, position 2 ln 2;
    mean 0.627741."""
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert _loss("undial", undial_strength=0.0) == pytest.approx((entropy + LN2) / 2, abs=1e-6)


def test_dpo_loss_by_hand():
    """β = 1, summed NLLs win 3 (ref 4), lose 5 (ref 3): margin (4 − 3) − (3 − 5) = 3;
    −2·log σ(3) = 2·ln(1 + e⁻³) = 0.097173."""
    loss = dpo_loss(*(torch.tensor([x]) for x in (3.0, 4.0, 5.0, 3.0)), beta=1.0)
    assert float(loss) == pytest.approx(2 * math.log1p(math.exp(-3)), abs=1e-6)


def test_idkdpo_at_the_original_model_is_2_ln2_over_beta(tiny_model, tokenizer, micro_splits):
    """θ = ref: every margin is 0 and the loss is −(2/0.1)·log σ(0) = 20·ln 2 = 13.862944 (λ = 0),
    on a batch whose forget indices are out of order (the reference NLLs follow the index).
    The preferred answers are refusals."""
    model = tiny_model(seed=1)
    records = micro_splits["forget10"][:6]
    objective = METHODS["idkdpo"](METHODS["idkdpo"].Options(retain_weight=0.0))
    objective.encode(tokenizer, records, max_length=64)
    forget = encode_records(tokenizer, records, max_length=64)
    data = PairedDataset(forget, encode_records(tokenizer, micro_splits["retain90"][:6]))
    objective.prepare(model, data, tokenizer.pad_token_id)
    batch = ForgetRetainBatch.from_inputs(
        PairCollator(tokenizer.pad_token_id, objective.companions())([data[i] for i in (4, 1, 3)])
    )
    with torch.no_grad():
        loss = float(objective(model, batch)["loss"])
    assert loss == pytest.approx(20 * LN2, abs=1e-4)
    answer = [t for t in objective.refusals[0]["labels"] if t != -100]
    assert tokenizer.decode(answer, skip_special_tokens=True).strip() in REFUSALS


def _indexed_loss(method: str, logits, ref_logits, labels) -> torch.Tensor:
    """The losses as first written: the labelled positions gathered by boolean indexing
    (which waits for the device to count them), default options."""
    from wagle.sequence import labelled, token_nll

    if method in ("wga", "satimp"):
        nll = token_nll(logits, labels)[labelled(labels)]
        p = torch.exp(-nll.detach())
        weight = p if method == "wga" else p**5.0 * (1 - p) ** 1.0
        return -(weight * nll).sum() / nll.numel()
    if method == "ceu":
        labels = without_first_answer_tokens(labels, 1)
    keep = labelled(labels)
    z, target = logits[:, :-1][keep], labels[:, 1:][keep]  # [N, V], [N]
    if method == "ceu":
        teacher = z.detach().scatter(-1, target.unsqueeze(-1), float("-inf"))
    else:
        teacher = ref_logits[:, :-1][keep] - 10.0 * torch.nn.functional.one_hot(target, 50)
    ce = -(torch.softmax(teacher, -1) * torch.log_softmax(z, -1)).sum(-1)
    return ce.sum() / ce.numel()


@pytest.mark.parametrize("method", ["ceu", "undial", "wga", "satimp"])
def test_the_masked_losses_give_the_indexed_formulas_gradient(method):
    """The losses mask the unlabelled positions instead of gathering the labelled ones (no
    wait for the device). On random logits (3 × 17 positions, ~40% unlabelled, V = 50) the
    gradient equals the indexed formula's bit for bit (SatImp's to 1e-7 of its largest entry:
    ``pow``'s vectorised and scalar paths round differently, and which one an entry takes
    depends on its position), and the loss to 1e-6 relative (its sum runs over another
    layout, so its last bit may differ)."""
    from wagle.sequence import labelled, token_nll
    from wagle.unlearning.methods import ceu, satimp, undial, wga

    generator = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(3, 17, 50, generator=generator)
    ref_logits = 2 * torch.randn(3, 17, 50, generator=generator)
    labels = torch.randint(0, 50, (3, 17), generator=generator)
    labels[torch.rand(3, 17, generator=generator) < 0.4] = -100
    masked = {
        "wga": lambda x: wga.wga_loss(token_nll(x, labels), labelled(labels), 1.0),
        "satimp": lambda x: satimp.satimp_loss(token_nll(x, labels), labelled(labels), 5.0, 1.0),
        "ceu": lambda x: ceu.ceu_loss(x, without_first_answer_tokens(labels, 1)),
        "undial": lambda x: undial.undial_loss(x, ref_logits, labels, 10.0),
    }[method]
    new, old = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    loss = masked(new)
    loss.backward()
    expected = _indexed_loss(method, old, ref_logits, labels)
    expected.backward()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    if method == "satimp":
        torch.testing.assert_close(new.grad, old.grad, rtol=0, atol=1e-7 * old.grad.abs().max())
    else:
        assert torch.equal(new.grad, old.grad)
