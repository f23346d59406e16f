"""Memorisation of the forget answers under teacher forcing (open-unlearning's definitions;
docs/metrics.md): from the greedy hits h_1..h_n of an answer's n text tokens (``TokenStats.hit``
without the appended EOS),

- ``exact_memorisation`` (Tirumala et al., 2022): the fraction of tokens that are the most
  likely one, (1/n)·Σ h_t;
- ``extraction_strength`` (Carlini et al., 2021): 1 − k/n with k the shortest prefix after
  which every remaining token is the most likely one (h_{k+1} … h_n all true); 1 = the whole
  answer follows from the question, 0 = not even the last token does. open-unlearning stops
  its search at k = n − 1, so a sample whose last token is missed scores 1/n there, 0 here.

Every metric maps the hits of one sample [n] (bool) to a float; the section holds the mean over
samples and the per-sample values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.data.batching import encode_records
from wagle.data.load import Record
from wagle.data.prompt import answer_end_id
from wagle.evaluation.metrics import MetricResult
from wagle.evaluation.token_stats import TokenStats, token_statistics
from wagle.registry import register

MEMORISATION_METRICS: dict[str, Callable[[torch.Tensor], float]] = {}


@register(MEMORISATION_METRICS, "exact_memorisation")
def exact_memorisation(hit: torch.Tensor) -> float:
    """Fraction of the tokens [n] that are the greedy prediction (0 for an empty answer)."""
    return hit.float().mean().item() if hit.numel() else 0.0


@register(MEMORISATION_METRICS, "extraction_strength")
def extraction_strength(hit: torch.Tensor) -> float:
    """1 − k/n, k the shortest prefix whose whole suffix is predicted (0 for an empty answer)."""
    n = hit.numel()
    missed = (~hit).nonzero()
    k = 0 if missed.numel() == 0 else int(missed[-1]) + 1  # past the last miss
    return 1 - k / n if n else 0.0


def memorisation(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: list[Record] | list[str],
    *,
    batch_size: int = 32,
    stats: list[TokenStats] | None = None,
) -> dict[str, Any]:
    """A section with every memorisation metric of ``data`` (QA records or raw texts);
    ``stats``: their ``token_statistics`` if computed already (membership inference reads the
    same)."""
    examples = encode_records(tokenizer, data)
    if stats is None:
        stats = token_statistics(model, examples, tokenizer.pad_token_id, batch_size)
    hits = [
        s.without_last().hit if appended_eos(r, e, tokenizer) else s.hit
        for s, r, e in zip(stats, data, examples, strict=True)
    ]
    results = {
        name: _mean([metric(h) for h in hits]) for name, metric in MEMORISATION_METRICS.items()
    }
    return {
        "n": len(data),
        "aggregates": {name: r.aggregate for name, r in results.items()},
        "per_sample": {name: r.per_sample for name, r in results.items()},
    }


def appended_eos(record: Record | str, example: dict[str, list[int]], tokenizer) -> bool:
    """Whether the QA prompt format appended its answer end (EOS, or the chat template's
    end-of-turn token) to this example (raw text has none)."""
    return isinstance(record, dict) and example["input_ids"][-1] == answer_end_id(tokenizer)


def _mean(values: list[float]) -> MetricResult:
    return MetricResult(sum(values) / len(values) if values else 0.0, values)
