"""Exact memorisation and extraction strength from greedy hits, by hand and on a tiny model."""

from __future__ import annotations

import pytest
import torch

from wagle.evaluation.memorisation import (
    exact_memorisation,
    extraction_strength,
    memorisation,
)


def _hits(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.bool)


def test_exact_memorisation_is_the_fraction_of_greedy_tokens():
    """Hits (1, 0, 1, 1): 3/4."""
    assert exact_memorisation(_hits(1, 0, 1, 1)) == 0.75


def test_extraction_strength_is_one_minus_the_shortest_extracting_prefix():
    """(1, 0, 1, 1): the suffix after the last miss (index 1) is predicted, k = 2: 1 − 2/4 = 0.5.
    All hits: k = 0, 1. Last token missed: k = n, 0 (open-unlearning: 1/n). (0, 1): k = 1, ½."""
    assert extraction_strength(_hits(1, 0, 1, 1)) == 0.5
    assert extraction_strength(_hits(1, 1, 1)) == 1.0
    assert extraction_strength(_hits(1, 1, 0)) == 0.0
    assert extraction_strength(_hits(0, 1)) == 0.5


def test_empty_answers_score_zero():
    assert exact_memorisation(_hits()) == extraction_strength(_hits()) == 0.0


def test_memorisation_section_leaves_out_the_appended_eos(tokenizer, tiny_model, micro_splits):
    """A zero model predicts token 0 everywhere (uniform logits, argmax picks the first), which
    no answer text token is: every score is 0. The section has both metrics per sample."""
    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    records = micro_splits["forget10"][:3]
    section = memorisation(model, tokenizer, records)
    assert section["n"] == 3
    assert section["aggregates"] == {"exact_memorisation": 0.0, "extraction_strength": 0.0}
    assert section["per_sample"]["extraction_strength"] == [0.0, 0.0, 0.0]


def test_memorisation_of_a_model_that_predicts_the_answer(monkeypatch, tokenizer, micro_splits):
    """Hits (1, 1, 0) + an appended EOS hit: the EOS is left out, EM 2/3 and ES 0."""
    import wagle.evaluation.memorisation as module
    from wagle.evaluation.token_stats import TokenStats

    z = torch.zeros(4)
    stats = TokenStats(z, z, z, _hits(1, 1, 0, 1))
    monkeypatch.setattr(module, "token_statistics", lambda *args: [stats])
    section = memorisation(None, tokenizer, micro_splits["forget10"][:1])
    assert section["aggregates"]["exact_memorisation"] == pytest.approx(2 / 3)
    assert section["aggregates"]["extraction_strength"] == 0.0
