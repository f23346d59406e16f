"""Per-token statistics of the labelled tokens, from one forward pass: what the membership
attacks and the memorisation metrics read.

For each labelled token t of an example (answer tokens of a QA record, every token of raw
text), with log p the model's next-token log-probabilities at the position that predicts t:

- ``nll``: −log p(t);
- ``mu``, ``sigma``: mean and standard deviation of log p(z) for z drawn from p itself,
  μ = Σ_z p(z)·log p(z), σ² = Σ_z p(z)·(log p(z))² − μ² (Min-K%++'s normalisation);
- ``hit``: whether t is the most likely token (greedy under teacher forcing).

Only the labelled positions' logits are computed (``labelled_logits``: the LM head runs on
those positions alone), [N, V] per batch, not [B, T, V].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from wagle.data.batching import iter_batches
from wagle.evaluation.likelihood import length_order
from wagle.sequence import labelled_logits


@dataclass(frozen=True)
class TokenStats:
    """The statistics of one example's n labelled tokens, each a CPU tensor [n]."""

    nll: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor
    hit: torch.Tensor  # bool

    def without_last(self) -> TokenStats:
        """The same without the last token (an appended EOS); kept whole when n ≤ 1."""
        if self.nll.numel() <= 1:
            return self
        return TokenStats(self.nll[:-1], self.mu[:-1], self.sigma[:-1], self.hit[:-1])


@torch.no_grad()
def token_statistics(
    model: PreTrainedModel,
    examples: list[dict[str, list[int]]],
    pad_token_id: int,
    batch_size: int = 32,
) -> list[TokenStats]:
    """``TokenStats`` of every encoded example, in the order given (batched by length)."""
    model.eval()
    order = length_order(examples)
    out: list[TokenStats | None] = [None] * len(examples)
    rows = iter(order)
    for batch in iter_batches([examples[i] for i in order], batch_size, pad_token_id, model.device):
        logits, target, counts = labelled_logits(model, batch)  # [N, V], [N], [B]
        log_p = torch.log_softmax(logits.float(), dim=-1)  # [N, V]
        p = log_p.exp()
        mu = (p * log_p).sum(dim=-1)
        variance = (p * log_p.square()).sum(dim=-1) - mu.square()
        columns = (
            -log_p.gather(-1, target.unsqueeze(-1)).squeeze(-1),
            mu,
            variance.clamp(min=0).sqrt(),
            log_p.argmax(dim=-1) == target,
        )
        split = [torch.split(c.cpu(), counts.tolist()) for c in columns]
        for parts in zip(*split, strict=True):
            out[next(rows)] = TokenStats(*parts)
    return out  # type: ignore[return-value]
