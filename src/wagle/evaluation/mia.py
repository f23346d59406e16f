"""Membership inference: can a score tell forget samples (members) from holdout ones?

Each attack is one function of a sample's statistics (``SampleStats``) returning its score,
**higher for likelier members**, registered in ``MIA_ATTACKS``; its AUC over members and
non-members is P(score(member) > score(non-member)). open-unlearning signs its scores the other
way ("higher = non-member") and labels holdout 1: the AUC is the same number. With ℓ_t the NLL
of labelled token t (answer tokens of QA records, every token of raw text), mean over all of
them unless said:

- ``loss`` (Yeom et al., 2018): −mean ℓ.
- ``zlib`` (Carlini et al., 2021): −mean ℓ / zlib(x), zlib(x) the byte length of the
  zlib-compressed text of the labelled tokens (decoded without special tokens).
- ``reference`` (Carlini et al., 2021): −(mean ℓ − mean ℓ_ref), ℓ_ref under a reference model
  (e.g. the retain model): needs ``reference_model``.
- ``gradnorm`` (Wang et al., 2024, arXiv 2402.17012): −(mean over parameter tensors of
  ‖∇ mean_t ℓ_t‖_p), one backward pass per sample over the text tokens; p ∈ {1, 2, inf}.
- ``min_k`` (Shi et al., 2024): the mean log-probability of the ``max(1, int(k·n))`` least
  likely of the n text tokens.
- ``min_k_plus_plus`` (Zhang et al., 2024): the same over z_t = (log p_t − μ_t)/σ_t, μ_t and σ_t
  the mean and standard deviation of log p under the model's own distribution at t (σ² ≥ 1e-6).

*Text tokens* leave out the EOS that the QA prompt format appends to an answer (a template
artefact, as in the TOFU and MUSE reference code); raw text has no appended EOS, so all its
tokens count (open-unlearning drops the last token there too). AUC 0.5 = the model treats forget
and holdout alike (what a retain model should show); PrivLeak against a retain model's AUC is
``stats.privleak``. Differences from open-unlearning are listed in docs/metrics.md.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.data.batching import encode_records
from wagle.data.load import Record
from wagle.errors import WagleError
from wagle.evaluation import stats
from wagle.evaluation.likelihood import mean_nll
from wagle.evaluation.memorisation import appended_eos
from wagle.evaluation.token_stats import TokenStats, token_statistics
from wagle.registry import register
from wagle.sequence import sequence_nll, token_mean


@dataclass(frozen=True)
class SampleStats:
    """What the attacks read of one sample."""

    tokens: TokenStats  # every labelled token
    text: TokenStats  # the text tokens (without an appended EOS)
    text_string: str  # the labelled tokens decoded, special tokens skipped (zlib)
    reference_nll: float | None = None  # mean NLL under the reference model
    grad_norm: float | None = None  # mean per-tensor gradient p-norm


@dataclass(frozen=True)
class Attack:
    score: Callable[[SampleStats, float], float]  # (sample, k) → membership score
    needs: str = ""  # "reference" or "gradnorm": extra passes it needs


MIA_ATTACKS: dict[str, Attack] = {}


def attack(name: str, needs: str = "") -> Callable:
    """Decorator: register ``score(sample, k)`` as membership attack ``name``."""

    def add(score: Callable[[SampleStats, float], float]) -> Callable:
        register(MIA_ATTACKS, name)(Attack(score, needs))
        return score

    return add


@attack("loss")
def loss_score(s: SampleStats, k: float) -> float:
    """−mean NLL of every labelled token (``k`` unused)."""
    return -s.tokens.nll.mean().item()


@attack("zlib")
def zlib_score(s: SampleStats, k: float) -> float:
    """−mean NLL / zlib-compressed byte length of the text."""
    return -s.tokens.nll.mean().item() / len(zlib.compress(s.text_string.encode("utf-8")))


@attack("reference", needs="reference")
def reference_score(s: SampleStats, k: float) -> float:
    """−(mean NLL − the reference model's mean NLL)."""
    return -(s.tokens.nll.mean().item() - s.reference_nll)


@attack("gradnorm", needs="gradnorm")
def gradnorm_score(s: SampleStats, k: float) -> float:
    """−(mean per-tensor gradient norm): members sit where the loss is flat."""
    return -s.grad_norm


@attack("min_k")
def min_k_score(s: SampleStats, k: float) -> float:
    """Mean log-probability of the ``max(1, int(k·n))`` text tokens with the highest NLL."""
    nll = s.text.nll
    return -torch.topk(nll, max(1, int(k * nll.numel()))).values.mean().item()


@attack("min_k_plus_plus")
def min_k_plus_plus_score(s: SampleStats, k: float) -> float:
    """Mean of the ``max(1, int(k·n))`` lowest z_t = (log p_t − μ_t)/σ_t over the text tokens."""
    t = s.text
    z = (-t.nll - t.mu) / t.sigma.clamp(min=1e-3)  # σ² ≥ 1e-6, as open-unlearning
    return -torch.topk(-z, max(1, int(k * z.numel()))).values.mean().item()


def membership_inference(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    members: list[Record] | list[str],
    nonmembers: list[Record] | list[str],
    *,
    k: float = 0.4,
    batch_size: int = 32,
    attacks: list[str] | None = None,
    reference_model: PreTrainedModel | None = None,
    p: float = 2.0,
    member_tokens: list[TokenStats] | None = None,
) -> dict[str, Any]:
    """AUC of every attack named (default: all that need nothing extra), with the per-sample
    scores of members and non-members. ``member_tokens``: the members' ``token_statistics``
    if computed already (the memorisation metrics read the same)."""
    names = attacks or [n for n, a in MIA_ATTACKS.items() if not a.needs]
    needs = {MIA_ATTACKS[n].needs for n in names}
    if "reference" in needs and reference_model is None:
        raise WagleError("the reference attack needs a reference model (--mia-reference-model)")
    out: dict[str, Any] = {"k": k}
    samples = {}
    given = {"members": member_tokens, "nonmembers": None}
    for group, data in (("members", members), ("nonmembers", nonmembers)):
        examples = encode_records(tokenizer, data)
        samples[group] = sample_stats(
            model, tokenizer, data, examples, batch_size,
            reference_model if "reference" in needs else None,
            p if "gradnorm" in needs else None, given[group],
        )  # fmt: skip
    for name in names:
        score = MIA_ATTACKS[name].score
        scores = {group: [score(s, k) for s in values] for group, values in samples.items()}
        out[name] = {"auc": stats.auc(scores["members"], scores["nonmembers"])} | scores
    return out


def sample_stats(
    model, tokenizer, data, examples, batch_size, reference_model=None, p=None, tokens=None
) -> list[SampleStats]:
    """``SampleStats`` of each encoded example; the reference NLL and the gradient norm only
    when a reference model / a norm ``p`` is given; ``tokens``: the examples'
    ``token_statistics`` if computed already."""
    if tokens is None:
        tokens = token_statistics(model, examples, tokenizer.pad_token_id, batch_size)
    reference = (
        mean_nll(reference_model, examples, tokenizer.pad_token_id, batch_size).tolist()
        if reference_model is not None
        else [None] * len(examples)
    )
    eos = [appended_eos(r, e, tokenizer) for r, e in zip(data, examples, strict=True)]
    norms = gradient_norms(model, examples, eos, p) if p else [None] * len(examples)
    return [
        SampleStats(
            tokens=t,
            text=t.without_last() if appended else t,
            text_string=tokenizer.decode(
                [i for i in e["labels"] if i >= 0], skip_special_tokens=True
            ),
            reference_nll=ref,
            grad_norm=norm,
        )
        for t, e, appended, ref, norm in zip(tokens, examples, eos, reference, norms, strict=True)
    ]


def gradient_norms(model, examples, appended: list[bool], p: float) -> list[float]:
    """Per example: the mean over parameter tensors of ‖∇θ mean NLL of its text tokens‖_p (one
    backward pass each, in eval mode; the gradients are cleared afterwards). ``appended``:
    whether each example ends with an appended EOS (left out)."""
    if p not in (1, 2, float("inf")):
        raise WagleError(f"gradnorm_p must be 1, 2 or inf, got {p}")
    model.eval()
    params = [q for q in model.parameters() if q.requires_grad]
    norms = []
    with torch.enable_grad():
        for example, eos in zip(examples, appended, strict=True):
            labels = list(example["labels"])
            if eos and sum(x >= 0 for x in labels) > 1:
                labels[-1] = -100  # the appended EOS is not text
            batch = {
                "input_ids": torch.tensor([example["input_ids"]], device=model.device),
                "attention_mask": torch.ones(1, len(labels), dtype=torch.long, device=model.device),
                "labels": torch.tensor([labels], device=model.device),
            }
            model.zero_grad(set_to_none=True)
            token_mean(*sequence_nll(model, batch)).backward()
            grads = [q.grad.detach().float().norm(p) for q in params if q.grad is not None]
            norms.append(torch.stack(grads).mean().item())
    model.zero_grad(set_to_none=True)
    return norms


def reference_model(config: Any, device: torch.device) -> PreTrainedModel | None:
    """The reference attack's model (``config.mia_reference_model``), loaded on ``device`` in
    ``config.dtype``; None when the attack is not asked for."""
    if "reference" not in config.mia_attacks:
        return None
    from wagle.models import load_model

    return load_model(config.mia_reference_model, dtype=config.dtype, device=str(device)).eval()
