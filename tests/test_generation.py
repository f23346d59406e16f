"""Batched greedy generation (left padding) gives what one-at-a-time generation gives."""

from __future__ import annotations

from wagle.evaluation.generation import generate_answers


def test_left_padded_batches_equal_one_at_a_time(tiny_model, tokenizer, micro_splits):
    """Questions of different lengths in one batch (so most are left-padded) and each alone:
    the same greedy answers, token for token."""
    model = tiny_model(seed=3)
    questions = [r["question"] for r in micro_splits["forget10"][:6]]
    questions += [r["question"] for r in micro_splits["world_facts"][:2]]
    lengths = {len(tokenizer(q)["input_ids"]) for q in questions}
    assert len(lengths) > 2  # the batch really is padded
    batched = generate_answers(
        model, tokenizer, questions, batch_size=len(questions), max_new_tokens=12, progress=False
    )
    alone = [
        generate_answers(model, tokenizer, [q], batch_size=1, max_new_tokens=12, progress=False)[0]
        for q in questions
    ]
    assert batched == alone
    assert any(batched)  # not all empty (a model that stops at once would pass trivially)
