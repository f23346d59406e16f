"""TOFU QA metrics of one split: probability, ROUGE-L recall, truth ratio (DESIGN.md §2.1).

A split is first *scored* (forward passes and greedy generations, :class:`QAScores`), then
every metric of ``QA_METRICS`` maps the scores to a :class:`MetricResult`. A split has a role:

- ``forget``: truth-ratio aggregate mean(min(R, 1/R)); the base answer is the paraphrase.
- ``retain``: truth-ratio aggregate mean(max(0, 1 − R)); the base answer is the paraphrase.
- ``real_world``: the correct answer is the base answer, and probability is the normalised
  P(correct) / (P(correct) + Σ P(wrong)) of length-normalised probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.data.load import Record
from wagle.errors import WagleError
from wagle.evaluation import stats
from wagle.evaluation.answer_sets import AnswerSets
from wagle.evaluation.generation import generate_answers
from wagle.evaluation.metrics import MetricResult
from wagle.evaluation.rouge import rouge_l
from wagle.registry import register

ROLES = ("forget", "retain", "real_world")


@dataclass
class QAScores:
    """Raw measurements of N QA records; NLLs are mean over answer tokens (nats)."""

    role: str
    answers: list[str]
    answer_nll: torch.Tensor  # [N], the ``answer`` field
    base_nll: torch.Tensor  # [N], paraphrased answer (forget/retain) or the answer (real world)
    perturbed_nll: list[torch.Tensor]  # N tensors [P_i]
    generations: list[str]

    def raw(self) -> dict[str, list]:
        """The per-sample raw values, JSON-ready, from which any metric can be recomputed."""
        return {
            "answer_nll": self.answer_nll.tolist(),
            "base_nll": self.base_nll.tolist(),
            "perturbed_nll": [p.tolist() for p in self.perturbed_nll],
            "generation": self.generations,
        }


QAMetric = Callable[[QAScores], MetricResult]
QA_METRICS: dict[str, QAMetric] = {}


@register(QA_METRICS, "probability")
def probability(scores: QAScores) -> MetricResult:
    """exp(−mean NLL) of the answer; on real-world sets normalised against the wrong answers."""
    p_true = torch.exp(-scores.answer_nll)
    if scores.role == "real_world":
        p_wrong = torch.stack([torch.exp(-p).sum() for p in scores.perturbed_nll])
        p_true = p_true / (p_true + p_wrong)
    values = p_true.tolist()
    return MetricResult(sum(values) / len(values), values)


@register(QA_METRICS, "rouge_l_recall")
def rouge_l_recall(scores: QAScores) -> MetricResult:
    """ROUGE-L recall (stemmed) of the greedy generation against the answer."""
    values = rouge_l(scores.generations, scores.answers, "recall")
    return MetricResult(sum(values) / len(values), values)


@register(QA_METRICS, "truth_ratio")
def truth_ratio(scores: QAScores) -> MetricResult:
    """Per-sample R = P̄(perturbed)/P(base); the aggregate depends on the role (module doc)."""
    values = stats.truth_ratio(scores.base_nll, scores.perturbed_nll).tolist()
    return MetricResult(stats.truth_ratio_aggregate(values, scores.role == "forget"), values)


def score_qa(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Record],
    role: str,
    *,
    batch_size: int = 32,
    max_new_tokens: int = 64,
    progress: bool = False,
    candidates: Candidates | None = None,
) -> QAScores:
    """Likelihoods of every candidate answer and greedy generations; ``candidates``: the
    records' ``Candidates`` if already prepared."""
    candidates = candidates or Candidates(tokenizer, records, role, batch_size)
    answer, base, perturbed = candidates.likelihoods(model)
    generations = generate_answers(
        model,
        tokenizer,
        [r["question"] for r in records],
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        progress=progress,
    )
    return QAScores(
        role=role,
        answers=[r["answer"] for r in records],
        answer_nll=answer,
        base_nll=base,
        perturbed_nll=perturbed,
        generations=generations,
    )


class Candidates:
    """The candidate answers of a split's records, prepared once (``AnswerSets``): the answer,
    the paraphrase (not on real-world sets, whose base answer is the answer) and the perturbed
    answers. ``likelihoods`` then costs forward passes only (a trajectory scores the same
    records at every point)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        records: list[Record],
        role: str,
        batch_size: int = 32,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {ROLES}")
        for i, r in enumerate(records):
            if not isinstance(r.get("perturbed_answer"), list) or not r["perturbed_answer"]:
                raise WagleError(f"record {i} has no 'perturbed_answer' list: cannot evaluate it")
        self.paraphrase = role != "real_world"
        base = ["paraphrased_answer"] if self.paraphrase else []
        sets = [[r[k] for k in ["answer", *base]] + r["perturbed_answer"] for r in records]
        questions = [r["question"] for r in records]
        self.sets = AnswerSets(tokenizer, questions, sets, batch_size=batch_size)

    def likelihoods(
        self, model: PreTrainedModel
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(answer NLL [N], base-answer NLL [N], perturbed NLLs: N tensors [P_i]), mean NLLs
        over answer tokens (nats)."""
        nll = self.sets.mean_nll(model)
        answer = torch.stack([n[0] for n in nll])
        base = torch.stack([n[int(self.paraphrase)] for n in nll])
        return answer, base, [n[1 + self.paraphrase :] for n in nll]


def evaluate_qa(scores: QAScores, questions: list[str]) -> dict[str, Any]:
    """Every registered metric of a scored split: aggregates and per-sample values."""
    results = {name: metric(scores) for name, metric in QA_METRICS.items()}
    per_sample = {"question": questions, "answer": scores.answers} | scores.raw()
    return {
        "role": scores.role,
        "n": len(questions),
        "aggregates": {name: r.aggregate for name, r in results.items()},
        "per_sample": per_sample | {name: r.per_sample for name, r in results.items()},
    }
