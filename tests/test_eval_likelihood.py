"""Batched log-likelihoods: flattening perturbed answers, per-token NLLs, batch invariance."""

from __future__ import annotations

import pytest
import torch

from wagle.data.batching import encode_records
from wagle.evaluation.likelihood import answer_nll, mean_nll, perturbed_nll, token_nlls


def test_perturbed_answers_are_flattened_and_split_back_in_order(
    tokenizer, tiny_model, micro_splits
):
    """Entry [i][j] is the mean NLL of record i with perturbed answer j as its answer."""
    model, records = tiny_model(), micro_splits["forget05"][:3]
    records = [records[0], records[1] | {"perturbed_answer": records[1]["perturbed_answer"][:2]}]
    got = perturbed_nll(model, tokenizer, records, batch_size=4)
    assert [p.numel() for p in got] == [5, 2]
    for record, values in zip(records, got, strict=True):
        alone = [record | {"answer": wrong} for wrong in record["perturbed_answer"]]
        assert values.tolist() == pytest.approx(
            answer_nll(model, tokenizer, alone).tolist(), abs=1e-5
        )


def test_mean_nll_does_not_depend_on_the_batch_size(tokenizer, tiny_model, micro_splits):
    model = tiny_model(seed=3)
    examples = encode_records(tokenizer, micro_splits["retain90"][:7])
    one = mean_nll(model, examples, tokenizer.pad_token_id, batch_size=1)
    seven = mean_nll(model, examples, tokenizer.pad_token_id, batch_size=7)
    assert torch.allclose(one, seven, atol=1e-5)


def test_token_nlls_average_to_the_mean_nll(tokenizer, tiny_model, micro_splits):
    """One value per labelled (answer) token; their mean is the sequence's mean NLL."""
    model = tiny_model(seed=4)
    examples = encode_records(tokenizer, micro_splits["holdout"][:4])
    per_token = token_nlls(model, examples, tokenizer.pad_token_id, batch_size=3)
    answer_tokens = [sum(label != -100 for label in e["labels"]) for e in examples]
    assert [t.numel() for t in per_token] == answer_tokens
    means = torch.stack([t.mean() for t in per_token])
    assert torch.allclose(means, mean_nll(model, examples, tokenizer.pad_token_id), atol=1e-5)


def test_results_come_back_in_the_callers_order(tokenizer, tiny_model, micro_splits):
    """Batching sorts by length internally; reversing the input reverses the output."""
    model = tiny_model(seed=5)
    examples = encode_records(tokenizer, micro_splits["forget10"][:9])
    forward = mean_nll(model, examples, tokenizer.pad_token_id, batch_size=4)
    backward = mean_nll(model, examples[::-1], tokenizer.pad_token_id, batch_size=4)
    assert torch.allclose(forward, backward.flip(0), atol=1e-5)
    lengths = [t.numel() for t in token_nlls(model, examples[::-1], tokenizer.pad_token_id, 4)]
    assert lengths == [sum(x != -100 for x in e["labels"]) for e in examples[::-1]]
