"""Batched log-likelihoods of answers and texts, the raw material of every metric.

All values are NLLs in nats from ``wagle.sequence`` (labels -100 on prompt and padding), in the
order of the records given. Examples are batched in order of length (less padding: about 20%
faster on the playground) and the results put back in the caller's order.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.data.batching import encode_records, iter_batches
from wagle.data.load import Record
from wagle.sequence import labelled, per_sequence_mean, sequence_nll, token_nll


@torch.no_grad()
def summed_nll(
    model: PreTrainedModel,
    examples: list[dict[str, list[int]]],
    pad_token_id: int,
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL [N] float32, labelled-token count [N] int64) of each encoded example, on CPU."""
    model.eval()
    order = length_order(examples)
    sums, counts = [torch.empty(0)], [torch.empty(0, dtype=torch.long)]
    for batch in iter_batches([examples[i] for i in order], batch_size, pad_token_id, model.device):
        nll_sum, n_tokens = sequence_nll(model, batch)
        sums.append(nll_sum.float().cpu())
        counts.append(n_tokens.cpu())
    restore = torch.argsort(torch.tensor(order, dtype=torch.long))
    return torch.cat(sums)[restore], torch.cat(counts)[restore]


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


def perturbed_nll(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Record],
    batch_size: int = 32,
) -> list[torch.Tensor]:
    """Mean NLL of every perturbed answer: one [P_i] tensor per record (P_i may differ).

    The perturbed answers of all records are flattened into one list, batched, and split back.
    """
    flat = [r | {"answer": wrong} for r in records for wrong in r["perturbed_answer"]]
    nll = answer_nll(model, tokenizer, flat, batch_size=batch_size)
    return list(torch.split(nll, [len(r["perturbed_answer"]) for r in records]))


@torch.no_grad()
def token_nlls(
    model: PreTrainedModel,
    examples: list[dict[str, list[int]]],
    pad_token_id: int,
    batch_size: int = 32,
) -> list[torch.Tensor]:
    """NLL of each labelled token, one [n_i] float32 CPU tensor per example (for Min-K%, MIA)."""
    model.eval()
    order = length_order(examples)
    out: list[torch.Tensor] = [torch.empty(0)] * len(examples)
    batches = iter_batches([examples[i] for i in order], batch_size, pad_token_id, model.device)
    rows = iter(order)
    for batch in batches:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        nll = token_nll(logits, batch["labels"]).float().cpu()
        keep_rows = labelled(batch["labels"]).cpu()
        for row, keep in zip(nll, keep_rows, strict=True):
            out[next(rows)] = row[keep]
    return out


def length_order(examples: list[dict[str, list[int]]]) -> list[int]:
    """Indices of ``examples`` by increasing length (stable), for batches with little padding."""
    return sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
