"""Raw-text and MUSE-style metrics (DESIGN.md §2.2).

- perplexity: per-text mean token NLL; the aggregate is the token-weighted mean NLL of the
  corpus, reported with its perplexity exp(NLL).
- verbatim memorisation (MUSE VerbMem): the first ``prefix_tokens`` tokens of a forget text
  are the prompt, the next ``continuation_tokens`` tokens the reference; the score is ROUGE-L
  F1 of the greedy continuation against the reference. Texts with no token after the prefix
  are skipped. MUSE's own verbmem set gives each prompt and its true continuation (``prompt``,
  ``gt``) as text: ``verbatim_memorisation_of_pairs`` continues those prompts.
- knowledge memorisation (MUSE KnowMem): ROUGE-L F1 of greedy answers to QA records.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.data.batching import encode_records
from wagle.data.load import Record
from wagle.errors import WagleError
from wagle.evaluation.generation import generate_answers, generate_continuations
from wagle.evaluation.likelihood import summed_nll
from wagle.evaluation.metrics import MetricResult
from wagle.evaluation.rouge import rouge_l
from wagle.sequence import per_sequence_mean


def perplexity(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    *,
    max_length: int = 512,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Per-text mean NLL and token counts; corpus NLL (token-weighted) and perplexity."""
    examples = encode_records(tokenizer, texts, max_length=max_length)
    nll_sum, n_tokens = summed_nll(model, examples, tokenizer.pad_token_id, batch_size)
    corpus_nll = nll_sum.sum().item() / max(1, n_tokens.sum().item())
    return {
        "n": len(texts),
        "aggregates": {"nll": corpus_nll, "perplexity": math.exp(corpus_nll)},
        "per_sample": {
            "nll": per_sequence_mean(nll_sum, n_tokens).tolist(),
            "n_tokens": n_tokens.tolist(),
        },
    }


def verbatim_memorisation(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    *,
    prefix_tokens: int = 32,
    continuation_tokens: int = 128,
    batch_size: int = 32,
) -> dict[str, Any]:
    """ROUGE-L F1 of greedy continuations of text prefixes against the true continuations."""
    prompts, references = [], []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        reference = ids[prefix_tokens : prefix_tokens + continuation_tokens]
        if reference:
            prompts.append(ids[:prefix_tokens])
            references.append(tokenizer.decode(reference, skip_special_tokens=True).strip())
    if not prompts:
        raise WagleError(f"no text is longer than the {prefix_tokens}-token prefix")
    return _continuation_rouge(
        model, tokenizer, prompts, references, continuation_tokens, batch_size
    )


def verbatim_memorisation_of_pairs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Record],
    *,
    continuation_tokens: int = 128,
    batch_size: int = 32,
) -> dict[str, Any]:
    """ROUGE-L F1 of greedy continuations of each ``prompt`` against its true continuation
    ``gt`` (MUSE's verbmem records)."""
    prompts = [tokenizer(r["prompt"], add_special_tokens=True)["input_ids"] for r in records]
    references = [r["gt"].strip() for r in records]
    return _continuation_rouge(
        model, tokenizer, prompts, references, continuation_tokens, batch_size
    )


def _continuation_rouge(
    model, tokenizer, prompts: list[list[int]], references: list[str], new_tokens: int, batch_size
) -> dict[str, Any]:
    generations = generate_continuations(
        model, tokenizer, prompts, batch_size=batch_size, max_new_tokens=new_tokens, progress=False
    )
    result = _mean(rouge_l(generations, references, "fmeasure"))
    return _section(result, "rouge_l_f1", reference=references, generation=generations)


def knowledge_memorisation(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Record],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 32,
) -> dict[str, Any]:
    """ROUGE-L F1 of greedy answers to the questions against the answers."""
    questions, answers = [r["question"] for r in records], [r["answer"] for r in records]
    generations = generate_answers(
        model,
        tokenizer,
        questions,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        progress=False,
    )
    result = _mean(rouge_l(generations, answers, "fmeasure"))
    return _section(
        result, "rouge_l_f1", question=questions, answer=answers, generation=generations
    )


def _mean(values: list[float]) -> MetricResult:
    return MetricResult(sum(values) / len(values), values)


def _section(result: MetricResult, name: str, **columns: list) -> dict[str, Any]:
    return {
        "n": len(result.per_sample),
        "aggregates": {name: result.aggregate},
        "per_sample": columns | {name: result.per_sample},
    }
