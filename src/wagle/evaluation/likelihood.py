"""Batched log-likelihoods of answers and texts, the raw material of every metric.

All values are NLLs in nats of the labelled tokens (labels -100 on prompt and padding), in the
order of the records given. What keeps evaluation cheap:

- logits exist only at the positions that predict a labelled token (``labelled_token_nll``):
  the LM head and the fp32 softmax never run over prompt or padding positions;
- examples are batched in order of length (less padding) and put back in the caller's order;
- the candidate answers of one question (answer, paraphrase, perturbed answers) are encoded
  with one rendering of the prompt and scored as one prefix tree (``answer_sets``).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.data.batching import check_not_cut_away, encode_records, iter_batches, warn_truncated
from wagle.data.load import Record
from wagle.data.prompt import encode_answers
from wagle.sequence import labelled_token_nll, per_sequence_mean


@torch.no_grad()
def token_nlls(
    model: PreTrainedModel,
    examples: list[dict[str, list[int]]],
    pad_token_id: int,
    batch_size: int = 32,
) -> list[torch.Tensor]:
    """NLL of each labelled token, one [n_i] float32 CPU tensor per example."""
    model.eval()
    order = length_order(examples)
    out: list[torch.Tensor] = [torch.empty(0)] * len(examples)
    batches = iter_batches([examples[i] for i in order], batch_size, pad_token_id, model.device)
    rows = iter(order)
    for batch in batches:
        nll, counts = labelled_token_nll(model, batch)
        for part in torch.split(nll.cpu(), counts.tolist()):
            out[next(rows)] = part
    return out


def summed_nll(
    model: PreTrainedModel,
    examples: list[dict[str, list[int]]],
    pad_token_id: int,
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL [N] float32, labelled-token count [N] int64) of each encoded example, on CPU."""
    return sums(token_nlls(model, examples, pad_token_id, batch_size))


def mean_nll(
    model: PreTrainedModel,
    examples: list[dict[str, list[int]]],
    pad_token_id: int,
    batch_size: int = 32,
) -> torch.Tensor:
    """Mean NLL over the labelled tokens of each encoded example: [N] float32 on CPU.

    ``exp(-mean_nll)`` is the length-normalised probability TOFU reports.
    """
    nll_sum, n_tokens = summed_nll(model, examples, pad_token_id, batch_size)
    return per_sequence_mean(nll_sum, n_tokens)


def encode_answer_sets(
    tokenizer: PreTrainedTokenizerBase,
    questions: list[str],
    answer_sets: list[list[str]],
    max_length: int = 512,
    *,
    eos: bool = True,
) -> list[dict[str, list[int]]]:
    """``encode_answers`` of each question's answers, flattened; warns about cut samples as
    ``encode_records`` does."""
    examples, cut = [], 0
    for question, answers in zip(questions, answer_sets, strict=True):
        encoded = encode_answers(tokenizer, question, answers, max_length, eos=eos)
        if any(len(e["input_ids"]) >= max_length for e in encoded):  # possibly cut: compare
            whole = encode_answers(tokenizer, question, answers, 1 << 30, eos=eos)
            cut += sum(
                len(w["input_ids"]) > len(e["input_ids"])
                for w, e in zip(whole, encoded, strict=True)
            )
        examples += encoded
    check_not_cut_away(examples, max_length, text=False)
    warn_truncated(cut, len(examples), max_length)
    return examples


def answer_nll(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Record],
    answer_key: str = "answer",
    batch_size: int = 32,
) -> torch.Tensor:
    """Mean answer-token NLL of ``record[answer_key]`` given the question prompt: [N]."""
    examples = encode_records(tokenizer, records, answer_key=answer_key)
    return mean_nll(model, examples, tokenizer.pad_token_id, batch_size)


def sums(nlls: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL [k], token count [k]) of per-token NLLs [n_i]."""
    total = torch.stack([n.sum() for n in nlls]) if nlls else torch.empty(0)
    return total, torch.tensor([n.numel() for n in nlls], dtype=torch.long)


def length_order(examples: list[dict[str, list[int]]]) -> list[int]:
    """Indices of ``examples`` by increasing length (stable), for batches with little padding."""
    return sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
