"""Is a playground build a fair test of unlearning? The fidelity figures, measured once per build.

Each check compares figures the evaluation package computes, exactly as ``wagle evaluate`` does,
with a threshold fixed before any unlearning result (issue 15):

- ``utility_not_pinned``: each of the nine model-utility figures of the target is ≥ 0.2 above
  the same figure of a randomly initialised model of the same architecture;
- ``world_kept``: no real-world figure of the target or of the retain model is more than 0.1
  below the base model's (fine-tuning did not wipe the world);
- ``utility_can_be_hurt``: dense gradient ascent from the target, run until its forget ROUGE is
  below the retain model's (on the same 100 forget questions, checked every 5 steps), lowers
  model utility by ≥ 30% of the target's;
- ``retain_like_holdout``: the retain model's forget ROUGE is within 0.05 of its holdout ROUGE,
  and the KS p-value between its forget and holdout truth ratios is ≥ 0.05;
- ``noise_floor`` (with ``noise_floor``: one more fine-tune): a second retain model (another
  fine-tuning seed) scores forget quality ≥ 0.1 against the first.

The fine-tuned models' evaluations are the build's own (``evals/``, saved when each model was
trained).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from wagle.data.load import load_qa
from wagle.evaluation.benchmarks import qa_sets
from wagle.evaluation.qa import evaluate_qa, score_qa
from wagle.evaluation.stats import harmonic_mean, ks_pvalue
from wagle.evaluation.summary import UTILITY_FIGURES, forget_quality
from wagle.io import write_json
from wagle.models import load_pretrained
from wagle.playground.config import PlaygroundConfig
from wagle.playground.train import mean_recall

SPLIT = "forget10"
REAL_WORLD = [f for f in UTILITY_FIGURES if not f.startswith("retain.")]
UTILITY_SETS = ("retain", "real_authors", "world_facts")
# The gradient-ascent probe: a tenth of the fine-tuning learning rate, checked every 5 steps.
GA_STEPS, GA_EVERY, GA_LEARNING_RATE, GA_PROBE = 200, 5, 2e-4, 100


def measure_fidelity(
    config: PlaygroundConfig, info: dict[str, Any], out: Path, progress: bool = True
) -> dict[str, Any]:
    """Every check of the module doc, from the build's saved evaluations (``evals/``) and a few
    more measurements; writes ``out`` (fidelity.json)."""
    from wagle.playground.build import EVALS, noise_model

    root, data = Path(info["target"]).parent, info["data"]
    names = {"retain": "retain-forget10", "target": "target"}
    names |= {"noise": noise_model(config)} if config.noise_floor else {}
    evals = {k: json.loads((root / EVALS / n / "eval.json").read_text()) for k, n in names.items()}
    figures = {name: _flat(result["sections"]) for name, result in evals.items()}
    figures["random"] = _utility_of_random(info, data)
    figures["base"] = _figures(load_pretrained(info["base"]), data, ("real_authors", "world_facts"))
    holdout = _holdout(load_pretrained(info["retain_models"][SPLIT]), data)
    checks = {
        "utility_not_pinned": _not_pinned(figures),
        "world_kept": _world_kept(figures),
        "utility_can_be_hurt": _can_be_hurt(info, evals, data),
        "retain_like_holdout": _like_holdout(evals["retain"], holdout),
    }
    if config.noise_floor:
        quality = forget_quality(evals["noise"]["sections"], evals["retain"])
        checks["noise_floor"] = _noise_floor(quality)
    result = {"passed": all(c["passed"] for c in checks.values()), "checks": checks}
    write_json(out, result | {"figures": figures})
    return result


def _check(passed: bool, summary: str, criterion: str, measured: dict[str, Any]) -> dict[str, Any]:
    """One check: whether it passed, a one-line summary, the criterion, what was measured."""
    return {"passed": bool(passed), "summary": summary, "criterion": criterion} | {
        "measured": measured
    }


def _flat(sections: dict[str, Any]) -> dict[str, float]:
    """``{section.metric: aggregate}`` of the QA sections."""
    return {
        f"{name}.{metric}": value
        for name, section in sections.items()
        if "role" in section
        for metric, value in section["aggregates"].items()
    }


def _figures(loaded, data: str, names: tuple[str, ...]) -> dict[str, float]:
    """The QA figures of ``names`` (sections of the playground's forget10 evaluation)."""
    model, tokenizer = loaded
    sets = qa_sets("playground", SPLIT, data)
    sections = {}
    for name in names:
        role, _, records = sets[name]
        scores = score_qa(model, tokenizer, records, role)
        sections[name] = evaluate_qa(scores, [r["question"] for r in records])
    return _flat(sections)


def _utility_of_random(info: dict[str, Any], data: str) -> dict[str, float]:
    """The utility figures of the target's architecture, randomly initialised (seeded)."""
    target, tokenizer = load_pretrained(info["target"])
    torch.manual_seed(0)
    model = type(target)(target.config).eval()
    return _figures((model, tokenizer), data, UTILITY_SETS)


def _noise_floor(quality: float) -> dict[str, Any]:
    return _check(
        quality >= 0.1,
        f"a second retain model's forget quality against the first: {quality:.3g} (≥ 0.1)",
        "forget quality of a second retain model (another fine-tuning seed) ≥ 0.1",
        {"forget_quality": quality},
    )


def _not_pinned(figures: dict[str, dict[str, float]]) -> dict[str, Any]:
    gaps = {f: figures["target"][f] - figures["random"][f] for f in UTILITY_FIGURES}
    smallest = min(gaps, key=gaps.get)
    return _check(
        gaps[smallest] >= 0.2,
        f"smallest gap between the target's and a random model's utility figures: "
        f"{gaps[smallest]:.3f} ({smallest}; ≥ 0.2)",
        "each of the target's nine utility figures ≥ a random model's + 0.2",
        {"target": {f: figures["target"][f] for f in UTILITY_FIGURES}, "random": figures["random"]}
        | {"smallest_gap": min(gaps.values())},
    )


def _world_kept(figures: dict[str, dict[str, float]]) -> dict[str, Any]:
    drops = {
        f"{model}:{f}": figures["base"][f] - figures[model][f]
        for model in ("target", "retain")
        for f in REAL_WORLD
    }
    largest = max(drops, key=drops.get)
    return _check(
        drops[largest] <= 0.1,
        f"largest real-world drop from the base: {drops[largest]:.3f} ({largest}; ≤ 0.1)",
        "no real-world figure of the target or the retain model > 0.1 below the base's",
        {"base": figures["base"], "largest_drop": max(drops.values())},
    )


def _like_holdout(retain: dict[str, Any], holdout: dict[str, Any]) -> dict[str, Any]:
    forget = retain["sections"]["forget"]
    rouge_gap = forget["aggregates"]["rouge_l_recall"] - holdout["aggregates"]["rouge_l_recall"]
    pvalue = ks_pvalue(forget["per_sample"]["truth_ratio"], holdout["per_sample"]["truth_ratio"])
    return _check(
        abs(rouge_gap) <= 0.05 and pvalue >= 0.05,
        f"retain model: forget ROUGE − holdout ROUGE {rouge_gap:+.3f} (within 0.05), KS p of "
        f"forget vs holdout truth ratios {pvalue:.3g} (≥ 0.05)",
        "the retain model's forget ROUGE within 0.05 of its holdout ROUGE, and the KS p-value "
        "of its forget vs holdout truth ratios ≥ 0.05",
        {
            "forget_rouge": forget["aggregates"]["rouge_l_recall"],
            "holdout_rouge": holdout["aggregates"]["rouge_l_recall"],
            "truth_ratio_ks_pvalue": pvalue,
        },
    )


def _holdout(loaded, data: str) -> dict[str, Any]:
    model, tokenizer = loaded
    records = load_qa(data, "holdout", for_eval=True)
    scores = score_qa(model, tokenizer, records, "forget")
    return evaluate_qa(scores, [r["question"] for r in records])


def _can_be_hurt(
    info: dict[str, Any], evals: dict[str, dict[str, Any]], data: str
) -> dict[str, Any]:
    """Dense GA from the target until its forget ROUGE (``GA_PROBE`` forget questions, every
    ``GA_EVERY`` steps) is below the retain model's on the same questions; then the utility
    figures, as ``wagle evaluate`` computes them, against the target's."""
    from wagle.unlearning import UnlearnConfig, unlearn_model

    model, tokenizer = load_pretrained(info["target"])
    forget = load_qa(data, SPLIT)
    probe = range(0, len(forget), max(1, len(forget) // GA_PROBE))
    retain_rouge = evals["retain"]["sections"]["forget"]["per_sample"]["rouge_l_recall"]
    stop = _StopBelowRouge(
        model, tokenizer, [forget[i] for i in probe], _mean([retain_rouge[i] for i in probe])
    )
    config = UnlearnConfig(
        method="ga", learning_rate=GA_LEARNING_RATE, max_steps=GA_STEPS, batch_size=8,
        warmup=0, lr_scheduler="constant", progress=False,
    )  # fmt: skip
    unlearn_model(model, tokenizer, forget, forget, config, callbacks=[stop])
    utility = harmonic_mean(list(_figures((model, tokenizer), data, UTILITY_SETS).values()))
    target = evals["target"]["model_utility"]
    drop = 1 - utility / target if stop.crossed and target else None
    if not stop.crossed:
        summary = f"gradient ascent kept forget ROUGE above the retain model's {stop.bar:.3f} for {GA_STEPS} steps"
    elif drop is None:
        summary = "the target's utility is 0: there is no utility to hurt"
    else:
        summary = (
            f"gradient ascent lowers utility by {drop:.0%} (≥ 30%) once its forget ROUGE "
            f"{stop.points[-1][1]:.3f} is below the retain model's {stop.bar:.3f} (step {stop.points[-1][0]})"
        )
    return _check(
        drop is not None and drop >= 0.3,
        summary,
        "dense gradient ascent run until its forget ROUGE is below the retain model's lowers "
        "model utility by ≥ 30% of the target's",
        {"retain_forget_rouge": stop.bar, "rouge_by_step": stop.points, "target_utility": target}
        | {"utility": utility, "drop": drop},
    )


class _StopBelowRouge(TrainerCallback):
    """Every ``GA_EVERY`` steps: greedy answers to ``records``; stop once their mean ROUGE-L
    recall is below ``bar``."""

    def __init__(self, model, tokenizer, records: list[dict], bar: float) -> None:
        self.model, self.tokenizer, self.records, self.bar = model, tokenizer, records, bar
        self.points: list[tuple[int, float]] = []
        self.crossed = False

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % GA_EVERY:
            return
        rouge = mean_recall(self.model, self.tokenizer, self.records)
        self.model.train()
        self.points.append((state.global_step, rouge))
        self.crossed = rouge < self.bar
        control.should_training_stop |= self.crossed


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
