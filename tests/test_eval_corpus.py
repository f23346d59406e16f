"""Raw-text metrics: perplexity of a uniform model, MUSE verbatim and knowledge memorisation."""

from __future__ import annotations

import math

import pytest

from wagle.errors import WagleError
from wagle.evaluation.corpus import knowledge_memorisation, perplexity, verbatim_memorisation

TEXTS = ["The capital of Orlinth is Duskmere.", "Readers know the author for crime fiction."]


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tokenizer, tiny_model):
    """Zeroed lm_head: every token has probability 1/V, NLL log V, perplexity V."""
    model = tiny_model()
    model.lm_head.weight.data.zero_()
    result = perplexity(model, tokenizer, TEXTS, batch_size=1)
    vocab = model.config.vocab_size
    assert result["aggregates"]["nll"] == pytest.approx(math.log(vocab), rel=1e-5)
    assert result["aggregates"]["perplexity"] == pytest.approx(vocab, rel=1e-4)
    expected_counts = [len(tokenizer(t)["input_ids"]) - 1 for t in TEXTS]  # BOS is not predicted
    assert result["per_sample"]["n_tokens"] == expected_counts


def test_corpus_nll_is_token_weighted(tokenizer, tiny_model):
    """Aggregate = Σ NLL / Σ tokens, not the mean of per-text means."""
    result = perplexity(tiny_model(seed=2), tokenizer, TEXTS)
    nll, counts = result["per_sample"]["nll"], result["per_sample"]["n_tokens"]
    weighted = sum(n * c for n, c in zip(nll, counts, strict=True)) / sum(counts)
    assert result["aggregates"]["nll"] == pytest.approx(weighted, rel=1e-5)


def test_verbatim_memorisation_continues_prefixes_and_skips_short_texts(tokenizer, tiny_model):
    """Prefix 4 tokens (BOS + 3), reference the next 3 tokens; 'Hi.' has nothing after 4 tokens."""
    result = verbatim_memorisation(
        tiny_model(), tokenizer, [*TEXTS, "Hi."], prefix_tokens=4, continuation_tokens=3
    )
    assert result["n"] == 2
    ids = tokenizer(TEXTS[0])["input_ids"]
    assert result["per_sample"]["reference"][0] == tokenizer.decode(ids[4:7]).strip()
    assert all(0.0 <= v <= 1.0 for v in result["per_sample"]["rouge_l_f1"])


def test_verbatim_memorisation_needs_a_text_longer_than_the_prefix(tokenizer, tiny_model):
    with pytest.raises(WagleError, match="prefix"):
        verbatim_memorisation(tiny_model(), tokenizer, ["Hi."], prefix_tokens=32)


def test_knowledge_memorisation_scores_generated_answers(tokenizer, tiny_model, micro_splits):
    records = micro_splits["forget10"][:3]
    result = knowledge_memorisation(tiny_model(), tokenizer, records, max_new_tokens=3)
    assert result["n"] == 3
    assert result["per_sample"]["answer"] == [r["answer"] for r in records]
    assert len(result["per_sample"]["generation"]) == 3
