"""Batched greedy generation (left padding) gives what one-at-a-time generation gives."""

from __future__ import annotations

import torch

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


def test_buffered_cache_gives_transformers_tokens(tiny_model, tokenizer, micro_splits):
    """Greedy answers with the key/value cache written into buffers (``BufferedLayer``) are
    token for token those of ``generate`` with transformers' own cache, on a left-padded batch
    that runs to ``max_new_tokens``; the buffers were really used."""
    from wagle.data.collate import collate
    from wagle.data.prompt import prompt_token_ids
    from wagle.evaluation.generation import BufferedLayer, buffered_cache, stop_ids

    model = tiny_model(seed=5).eval()
    prompts = [prompt_token_ids(tokenizer, r["question"]) for r in micro_splits["forget10"][:5]]
    batch = collate([{"input_ids": p} for p in prompts], tokenizer.pad_token_id, "left")
    settings = {"max_new_tokens": 20, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    settings["eos_token_id"] = stop_ids(model, tokenizer)
    cache = buffered_cache(model, batch["input_ids"].shape[1] + 20)
    with torch.no_grad():
        default = model.generate(**batch, **settings)
        buffered = model.generate(**batch, **settings, **cache)
    assert torch.equal(default, buffered)
    assert default.shape[1] > batch["input_ids"].shape[1] + 10  # many steps, not one
    layers = cache["past_key_values"].layers
    assert all(isinstance(layer, BufferedLayer) for layer in layers) and len(layers) == 2
    assert layers[0].length == default.shape[1] - 1  # the last token is never fed back


def test_buffered_layer_grows_past_its_capacity():
    """A layer asked to hold more than its capacity keeps every position, in order."""
    from wagle.evaluation.generation import BufferedLayer

    layer = BufferedLayer(capacity=3)
    steps = [torch.full((1, 1, n, 2), float(i)) for i, n in enumerate((2, 1, 2))]
    for step in steps:
        keys, values = layer.update(step, -step)
    assert keys.flatten().tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert torch.equal(values, -keys) and layer.get_seq_length() == 5
