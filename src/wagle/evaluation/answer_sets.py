"""Candidate answers of many questions, prepared once and scored on any model.

``AnswerSets`` holds each question's candidates (TOFU's answer, paraphrase and perturbed
answers; multiple-choice options) encoded with one rendering of the prompt and packed as one
prefix tree per question (``prefix_tree``), and, once built, the padded batches. Scoring
them again, as a trajectory does at every point, costs forward passes only.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.evaluation.likelihood import encode_answer_sets, sums, token_nlls
from wagle.evaluation.prefix_tree import (
    eager_mask_dtype,
    packs_trees,
    prefix_tree,
    tree_batch,
    tree_token_nll,
)
from wagle.sequence import per_sequence_mean


class AnswerSets:
    """``answer_sets[i]`` given ``questions[i]``; ``eos=False`` scores the answers as bare
    continuations (multiple choice). ``batch_size``: about that many candidates per pass."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        questions: list[str],
        answer_sets: list[list[str]],
        *,
        batch_size: int = 32,
        eos: bool = True,
    ) -> None:
        examples = iter(encode_answer_sets(tokenizer, questions, answer_sets, eos=eos))
        self.groups = [[next(examples) for _ in answers] for answers in answer_sets]
        self.trees = [prefix_tree(group) for group in self.groups]
        self.pad_token_id, self.batch_size = tokenizer.pad_token_id, batch_size
        self._batches: dict[torch.dtype | None, list[tuple[list[int], dict]]] = {}

    @torch.no_grad()
    def token_nlls(self, model: PreTrainedModel) -> list[list[torch.Tensor]]:
        """NLL of each labelled token, ``[question][candidate]`` → [n] float32 on CPU: each
        question as one prefix tree where the model allows it, else candidate by candidate."""
        if not packs_trees(model, self.trees):
            flat = [e for group in self.groups for e in group]
            nlls = iter(token_nlls(model, flat, self.pad_token_id, self.batch_size))
            return [[next(nlls) for _ in group] for group in self.groups]
        model.eval()
        out: list[list[torch.Tensor]] = [[] for _ in self.groups]
        for questions, batch in self._tree_batches(eager_mask_dtype(model)):
            nll = tree_token_nll(model, batch).cpu()
            parts = iter(torch.split(nll, [c for i in questions for c in self.trees[i].counts]))
            for i in questions:
                out[i] = [next(parts) for _ in self.trees[i].counts]
        return out

    def summed_nll(self, model: PreTrainedModel) -> list[torch.Tensor]:
        """Summed NLL of each candidate: one [k_i] tensor per question."""
        return [sums(nlls)[0] for nlls in self.token_nlls(model)]

    def mean_nll(self, model: PreTrainedModel) -> list[torch.Tensor]:
        """Mean NLL over each candidate's labelled tokens: one [k_i] tensor per question."""
        return [per_sequence_mean(*sums(nlls)) for nlls in self.token_nlls(model)]

    def _tree_batches(self, mask_dtype: torch.dtype | None) -> list[tuple[list[int], dict]]:
        """(question indices, ``tree_batch``) of trees in order of size, about ``batch_size``
        candidates each; built once per mask dtype."""
        if mask_dtype not in self._batches:
            order = sorted(range(len(self.trees)), key=lambda i: len(self.trees[i].tokens))
            cuts: list[list[int]] = [[]]
            candidates = 0
            for i in order:
                count = len(self.trees[i].counts)
                if cuts[-1] and candidates + count > self.batch_size:
                    cuts.append([])
                    candidates = 0
                cuts[-1].append(i)
                candidates += count
            self._batches[mask_dtype] = [
                (q, tree_batch([self.trees[i] for i in q], self.pad_token_id, mask_dtype))
                for q in cuts
            ]
        return self._batches[mask_dtype]
