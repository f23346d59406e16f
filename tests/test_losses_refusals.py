"""Refusal targets for the PO method."""

from wagle.data.refusals import REFUSALS, refusal_records


def test_refusal_records_keep_questions_and_replace_answers():
    records = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(30)]
    refused = refusal_records(records, seed=1)
    assert [r["question"] for r in refused] == [r["question"] for r in records]
    assert all(r["answer"] in REFUSALS for r in refused)
    assert [r["original_answer"] for r in refused] == [r["answer"] for r in records]
    assert len({r["answer"] for r in refused}) > 5  # varied, not one template


def test_refusal_records_are_deterministic_per_seed():
    records = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(30)]
    assert refusal_records(records, seed=3) == refusal_records(records, seed=3)
    assert refusal_records(records, seed=3) != refusal_records(records, seed=4)
