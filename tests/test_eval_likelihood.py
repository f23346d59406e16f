"""Batched log-likelihoods: equal to the old full-logits path, answer sets, per-token NLLs,
batch invariance."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import wagle.evaluation.answer_sets as answer_sets_module
from wagle.data.batching import encode_records, iter_batches
from wagle.errors import WagleError
from wagle.evaluation.answer_sets import AnswerSets
from wagle.evaluation.likelihood import (
    answer_nll,
    encode_answer_sets,
    length_order,
    mean_nll,
    token_nlls,
)
from wagle.evaluation.prefix_tree import prefix_tree, tree_batch
from wagle.evaluation.qa import Candidates
from wagle.sequence import labelled, sequence_nll, token_nll


def _old_mean_nll(model, tokenizer, records, key, batch_size):
    """The evaluation path before candidates were batched together: one pass per answer field,
    full [B, T, V] logits over every position (``sequence_nll``), batches in length order."""
    examples = encode_records(tokenizer, records, answer_key=key)
    order = length_order(examples)
    out = torch.empty(len(examples))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = next(iter_batches([examples[i] for i in rows], batch_size, tokenizer.pad_token_id))
        total, count = sequence_nll(model, batch)
        out[rows] = total / count
    return out


def _full_logits_batches(model, examples, pad_token_id, batch_size):
    """(example indices, batch, full [B, T, V] logits) of each batch, in length order (the old
    paths' batching)."""
    order = length_order(examples)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = next(iter_batches([examples[i] for i in rows], batch_size, pad_token_id))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        yield rows, batch, logits


def _old_token_nlls(model, examples, pad_token_id, batch_size):
    """Per-token NLLs from full logits, batches in length order (the old ``token_nlls``)."""
    out = [None] * len(examples)
    for rows, batch, logits in _full_logits_batches(model, examples, pad_token_id, batch_size):
        nll, keep = token_nll(logits, batch["labels"]), labelled(batch["labels"])
        for row, values, kept in zip(rows, nll, keep, strict=True):
            out[row] = values[kept]
    return out


@pytest.fixture(scope="module")
def memorising_model(tokenizer, micro_splits):
    """A 2-layer Llama trained for 40 steps on 6 forget10 answers and paraphrases: most answer
    tokens then have NLLs near 0 (median ~0.06, a fifth below 0.01), where an error in the
    logits shows most relative to the value."""
    torch.manual_seed(7)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    records = micro_splits["forget10"][:6]
    pairs = [r | {"answer": a} for r in records for a in (r["answer"], r["paraphrased_answer"])]
    batch = next(iter_batches(encode_records(tokenizer, pairs), 64, tokenizer.pad_token_id))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-2)
    for _ in range(40):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("kind", ["random", "memorising"])
def test_every_per_sample_value_equals_the_old_paths(
    tokenizer, tiny_model, memorising_model, micro_splits, kind
):
    """Answer, base and every perturbed NLL of each role, and MIA's per-token NLLs, equal the
    old path's to 1e-6 relative, on a random model (NLLs ~6) and on one that has memorised
    some of the answers (NLLs near 0)."""
    model = tiny_model(seed=7) if kind == "random" else memorising_model
    records = micro_splits["forget10"][:6] + micro_splits["retain90"][:5]
    records[1] = records[1] | {"perturbed_answer": records[1]["perturbed_answer"][:2]}
    for role in ("forget", "real_world"):
        answer, base, perturbed = Candidates(tokenizer, records, role, 4).likelihoods(model)
        base_key = "answer" if role == "real_world" else "paraphrased_answer"
        flat = [r | {"answer": wrong} for r in records for wrong in r["perturbed_answer"]]
        old_perturbed = _old_mean_nll(model, tokenizer, flat, "answer", 4)
        expected = {
            "answer": _old_mean_nll(model, tokenizer, records, "answer", 4),
            "base": _old_mean_nll(model, tokenizer, records, base_key, 4),
            "perturbed": old_perturbed,
        }
        got = {"answer": answer, "base": base, "perturbed": torch.cat(perturbed)}
        assert [p.numel() for p in perturbed] == [len(r["perturbed_answer"]) for r in records]
        for key, values in got.items():
            torch.testing.assert_close(values, expected[key], rtol=1e-6, atol=0)
    examples = encode_records(tokenizer, records)
    new = token_nlls(model, examples, tokenizer.pad_token_id, batch_size=3)
    for got_tokens, old_tokens in zip(
        new, _old_token_nlls(model, examples, tokenizer.pad_token_id, 3), strict=True
    ):
        torch.testing.assert_close(got_tokens, old_tokens, rtol=1e-6, atol=0)


def test_answer_sets_come_back_per_question_in_order(tokenizer, tiny_model, micro_splits):
    """Entry [i][j] is the mean NLL of answer j of question i scored on its own."""
    model, records = tiny_model(), micro_splits["forget05"][:3]
    sets = [
        [r["answer"], *r["perturbed_answer"][:k]] for r, k in zip(records, (4, 1, 2), strict=True)
    ]
    questions = [r["question"] for r in records]
    got = AnswerSets(tokenizer, questions, sets, batch_size=4).mean_nll(model)
    assert [g.numel() for g in got] == [5, 2, 3]
    for record, answers, values in zip(records, sets, got, strict=True):
        alone = [record | {"answer": a} for a in answers]
        torch.testing.assert_close(values, answer_nll(model, tokenizer, alone), rtol=1e-6, atol=0)


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


def test_a_prefix_tree_holds_each_shared_token_once():
    """Prompt [7, 8] (labels -100), answers [9, 4] and [9, 5, 6]. Nodes: 7 8 9 4 5 6 with
    parents -1 0 1 2 2 4 and depths 0 1 2 3 3 4. Candidate 1's tokens 9, 4 are predicted by
    nodes 1 (token 8) and 2 (token 9); candidate 2's 9, 5, 6 by nodes 1, 2, 4."""
    examples = [
        {"input_ids": [7, 8, 9, 4], "labels": [-100, -100, 9, 4]},
        {"input_ids": [7, 8, 9, 5, 6], "labels": [-100, -100, 9, 5, 6]},
    ]
    tree = prefix_tree(examples)
    assert tree.tokens == [7, 8, 9, 4, 5, 6]
    assert tree.parent == [-1, 0, 1, 2, 2, 4]
    assert tree.depth == [0, 1, 2, 3, 3, 4]
    assert tree.predictor == [1, 2, 1, 2, 4]
    assert tree.target == [9, 4, 9, 5, 6]
    assert tree.counts == [2, 3]
    batch = tree_batch([tree], pad_token_id=0, mask_dtype=None)
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0],  # token 4 sees 7 8 9, not its sibling 5
            [1, 1, 1, 0, 1, 0],
            [1, 1, 1, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(batch["attention_mask"][0, 0], expected)
    assert batch["position_ids"].tolist() == [tree.depth]


@pytest.mark.parametrize("attention", ["sdpa", "eager", "one by one"])
def test_every_attention_path_gives_the_same_values(
    tokenizer, tiny_model, micro_splits, attention, monkeypatch
):
    """The prefix trees run with sdpa (bool mask) and eager attention (additive mask); a model
    that cannot take a tree mask is scored candidate by candidate. Each equals the NLL of every
    answer scored on its own (1e-6)."""
    model, records = tiny_model(seed=2), micro_splits["forget10"][:5]
    sets = [[r["answer"], r["paraphrased_answer"], *r["perturbed_answer"]] for r in records]
    alone = [r | {"answer": a} for r, answers in zip(records, sets, strict=True) for a in answers]
    expected = answer_nll(model, tokenizer, alone, batch_size=1)
    trees_run = []
    original = answer_sets_module.tree_token_nll
    monkeypatch.setattr(
        answer_sets_module, "tree_token_nll", lambda *a: trees_run.append(1) or original(*a)
    )
    if attention == "one by one":
        monkeypatch.setattr(answer_sets_module, "packs_trees", lambda model, trees: False)
    else:
        model.config._attn_implementation = attention
    questions = [r["question"] for r in records]
    got = AnswerSets(tokenizer, questions, sets, batch_size=8).mean_nll(model)
    torch.testing.assert_close(torch.cat(got), expected, rtol=1e-6, atol=0)
    assert bool(trees_run) == (attention != "one by one")


def test_a_prompt_that_fills_max_length_is_refused(tokenizer, micro_splits):
    """Candidates whose prompt alone reaches ``max_length`` have no token to score: one line,
    as in training, rather than a mean NLL of 0/0."""
    record = micro_splits["forget10"][0]
    answers = [[record["answer"], record["paraphrased_answer"]]]
    with pytest.raises(WagleError, match="max_length=4 leaves 2 of 2 samples without a token"):
        encode_answer_sets(tokenizer, [record["question"]], answers, max_length=4)


def _old_token_statistics(model, examples, pad_token_id, batch_size):
    """(NLL, μ, σ, hit) per example from full [B, T, V] logits, batches in length order (the
    old ``token_statistics``)."""
    out = [None] * len(examples)
    for rows, batch, logits in _full_logits_batches(model, examples, pad_token_id, batch_size):
        keep = labelled(batch["labels"])  # [B, T-1]
        for row, row_logits, kept, labels in zip(rows, logits, keep, batch["labels"], strict=True):
            log_p = torch.log_softmax(row_logits[:-1][kept], dim=-1)  # [n, V]
            target = labels[1:][kept]
            mu = (log_p.exp() * log_p).sum(-1)
            variance = (log_p.exp() * log_p.square()).sum(-1) - mu.square()
            nll = -log_p.gather(-1, target[:, None])[:, 0]
            out[row] = (nll, mu, variance.clamp(min=0).sqrt(), log_p.argmax(-1) == target)
    return out


@pytest.mark.parametrize("kind", ["random", "memorising"])
def test_token_statistics_equal_the_full_logits_path(
    tokenizer, tiny_model, memorising_model, micro_splits, kind
):
    """``token_statistics`` (the LM head on labelled positions only) against the old path
    (full [B, T, V] logits, log-softmax at the labelled positions), same batches: NLL, μ and σ
    equal to 1e-6 relative, the greedy hits equal."""
    from wagle.evaluation.token_stats import token_statistics

    model = tiny_model(seed=7) if kind == "random" else memorising_model
    examples = encode_records(tokenizer, micro_splits["forget10"][:6] + micro_splits["holdout"])
    new = token_statistics(model, examples, tokenizer.pad_token_id, batch_size=3)
    with torch.no_grad():
        old = _old_token_statistics(model, examples, tokenizer.pad_token_id, 3)
    for stats, (nll, mu, sigma, hit) in zip(new, old, strict=True):
        for got, expected in ((stats.nll, nll), (stats.mu, mu), (stats.sigma, sigma)):
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
        assert torch.equal(stats.hit, hit)
