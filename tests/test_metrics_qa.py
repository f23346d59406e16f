"""TOFU QA metrics from known probabilities and fixed strings, and the scoring pass behind them."""

from __future__ import annotations

import math

import pytest
import torch

from wagle.data.batching import encode_records, iter_batches
from wagle.evaluation.qa import QA_METRICS, QAScores, evaluate_qa, score_qa
from wagle.evaluation.rouge import rouge_l
from wagle.sequence import sequence_nll


def nll(*probabilities: float) -> torch.Tensor:
    return torch.tensor([-math.log(p) for p in probabilities])


def scores(role: str, **overrides) -> QAScores:
    """Two samples: P(answer) 0.5 and 0.25; P(para) 0.5 and 0.8; P(perturbed) 0.25/0.0625 and 0.2."""
    values = dict(
        role=role,
        answers=["the cat sat on the mat", "dogs bark"],
        answer_nll=nll(0.5, 0.25),
        base_nll=nll(0.5, 0.8),
        perturbed_nll=[nll(0.25, 0.0625), nll(0.2)],
        generations=["the cat sat", "a dog barked"],
    )
    return QAScores(**(values | overrides))


def test_probability_is_length_normalised_answer_probability():
    """exp(−mean NLL): 0.5 and 0.25, mean 0.375."""
    result = QA_METRICS["probability"](scores("forget"))
    assert result.per_sample == pytest.approx([0.5, 0.25])
    assert result.aggregate == pytest.approx(0.375)


def test_real_world_probability_is_normalised_against_the_wrong_answers():
    """0.5 / (0.5 + 0.25 + 0.0625) = 0.615384…; 0.25 / (0.25 + 0.2) = 0.5555…"""
    result = QA_METRICS["probability"](scores("real_world"))
    assert result.per_sample == pytest.approx([0.5 / 0.8125, 0.25 / 0.45])


def test_truth_ratio_per_sample_and_forget_aggregate():
    """R = 0.125/0.5 = 0.25 and 0.2/0.8 = 0.25; forget: min(R, 1/R) = 0.25 each."""
    result = QA_METRICS["truth_ratio"](scores("forget"))
    assert result.per_sample == pytest.approx([0.25, 0.25])
    assert result.aggregate == pytest.approx(0.25)


def test_truth_ratio_retain_aggregate_is_one_minus_r():
    """R = 0.25 twice: max(0, 1 − R) = 0.75."""
    assert QA_METRICS["truth_ratio"](scores("retain")).aggregate == pytest.approx(0.75)


def test_rouge_l_recall_on_fixed_strings():
    """'the cat sat' covers 3 of the 6 reference tokens in order: recall 0.5. With the Porter
    stemmer 'a dog barked' vs 'dogs bark' matches dog, bark: recall 2/2 = 1."""
    result = QA_METRICS["rouge_l_recall"](scores("forget"))
    assert result.per_sample == pytest.approx([0.5, 1.0])
    assert result.aggregate == pytest.approx(0.75)


def test_rouge_l_f1_on_fixed_strings():
    """Precision 3/3, recall 3/6: F1 = 2·1·0.5/1.5 = 2/3."""
    assert rouge_l(["the cat sat"], ["the cat sat on the mat"], "fmeasure") == [
        pytest.approx(2 / 3)
    ]


def test_evaluate_qa_keeps_raw_values_and_every_metric_per_sample():
    out = evaluate_qa(scores("retain"), ["q1", "q2"])
    assert set(out["aggregates"]) == set(QA_METRICS)
    for values in out["per_sample"].values():
        assert len(values) == 2
    assert out["per_sample"]["perturbed_nll"][0] == pytest.approx(
        [-math.log(0.25), 2.772588], abs=1e-5
    )


def test_score_qa_matches_one_sequence_at_a_time(tokenizer, tiny_model, micro_splits):
    """Batched, padded NLLs equal the NLL of each record scored alone (to float tolerance)."""
    model, records = tiny_model(seed=1), micro_splits["forget10"][:5]
    scored = score_qa(model, tokenizer, records, "forget", batch_size=3, max_new_tokens=2)
    for i, key in enumerate(["answer", "paraphrased_answer"]):
        examples = encode_records(tokenizer, records, answer_key=key)
        for j, example in enumerate(examples):
            batch = next(iter_batches([example], 1, tokenizer.pad_token_id))
            total, count = sequence_nll(model, batch)
            expected = (total / count).item()
            got = (scored.answer_nll, scored.base_nll)[i][j].item()
            assert got == pytest.approx(expected, abs=1e-5)
    assert [len(p) for p in scored.perturbed_nll] == [len(r["perturbed_answer"]) for r in records]
    assert len(scored.generations) == 5


def test_score_qa_real_world_uses_the_answer_as_the_base(tokenizer, tiny_model, micro_splits):
    records = [
        {k: v for k, v in r.items() if k != "paraphrased_answer"}
        for r in micro_splits["world_facts"][:3]
    ]
    scored = score_qa(tiny_model(), tokenizer, records, "real_world", max_new_tokens=2)
    assert torch.equal(scored.base_nll, scored.answer_nll)
