"""From sections to the headline figures, and comparison with a retain model's evaluation.

Every aggregate of every section is a *figure* named ``<section>.<aggregate>`` (e.g.
``forget.probability``, ``mia.min_k_auc``). On top of them:

- ``forget_quality``: KS p-value between this model's per-sample forget truth ratios and the
  reference (retain model) evaluation's; ``None`` without a reference.
- ``model_utility``: harmonic mean of the nine retain / real_authors / world_facts
  (probability, rouge_l_recall, truth_ratio) aggregates; ``None`` if any is missing.
- ``privleak``: MUSE's PrivLeak of the Min-K% attack against the reference, in percent:
  (r − a)/(1 − r)·100 with a, r this model's and the reference's AUCs (``stats.privleak``).
- ``forget_efficacy`` (higher = more forgotten): the arithmetic mean of the terms available of
  forget_quality, 1 − forget.probability, 1 − forget.rouge_l_recall, 1 − verbmem.rouge_l_f1,
  1 − knowmem_forget.rouge_l_f1, and 1 − 2·|mia.min_k_auc − 0.5| (1 when forget and holdout
  look alike, 0 when the attack separates them perfectly either way). The terms used are
  listed under ``forget_efficacy_terms``; with no reference, forget_quality is not one of them.
- ``reference_figures``: the reference's figures, side by side (DESIGN.md §4: compare forget
  ROUGE with the retain model's rather than reading "lower is better").
- ``utility`` (higher = more kept): the harmonic mean of the utility figures present: the nine
  of model_utility (then utility == model_utility) and knowmem_retain.rouge_l_f1.
- ``degeneration``: repetition of the greedy forget answers, their ROUGE gap to the reference's
  and the ``degenerate`` flag (``wagle.evaluation.degeneration``); None without forget answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wagle.errors import WagleError
from wagle.evaluation import stats
from wagle.evaluation.degeneration import section_degeneration

Sections = dict[str, dict[str, Any]]
UTILITY_FIGURES = [
    f"{section}.{metric}"
    for section in ("retain", "real_authors", "world_facts")
    for metric in ("probability", "rouge_l_recall", "truth_ratio")
]
EFFICACY_TERMS = {
    "forget.probability": lambda x: 1 - x,
    "forget.rouge_l_recall": lambda x: 1 - x,
    "verbmem.rouge_l_f1": lambda x: 1 - x,
    "knowmem_forget.rouge_l_f1": lambda x: 1 - x,
    "mia.min_k_auc": lambda x: max(0.0, 1 - 2 * abs(x - 0.5)),
}


def figures(sections: Sections) -> dict[str, float]:
    """Every aggregate, flat: ``{"<section>.<aggregate>": value}``."""
    return {
        f"{name}.{key}": value
        for name, section in sections.items()
        for key, value in section["aggregates"].items()
    }


def summarise(sections: Sections, reference: dict[str, Any] | None) -> dict[str, Any]:
    """The headline figures of an evaluation (module docstring), plus every individual figure."""
    flat = figures(sections)
    quality = forget_quality(sections, reference) if reference else None
    terms = {name: fn(flat[name]) for name, fn in EFFICACY_TERMS.items() if name in flat}
    if quality is not None:
        terms = {"forget_quality": quality} | terms
    utility_names = [n for n in [*UTILITY_FIGURES, "knowmem_retain.rouge_l_f1"] if n in flat]
    has_all_nine = all(n in flat for n in UTILITY_FIGURES)
    return {
        "forget_efficacy": sum(terms.values()) / len(terms) if terms else None,
        "utility": stats.harmonic_mean([flat[n] for n in utility_names]) if utility_names else None,
        "forget_quality": quality,
        "model_utility": stats.harmonic_mean([flat[n] for n in UTILITY_FIGURES])
        if has_all_nine
        else None,
        "privleak": privleak(sections, reference) if reference else None,
        "degeneration": section_degeneration(sections, reference),
        "forget_efficacy_terms": terms,
        "figures": flat,
        "reference_figures": figures(reference["sections"]) if reference else None,
    }


def forget_quality(sections: Sections, reference: dict[str, Any]) -> float | None:
    """KS p-value of forget truth ratios against the reference's (None if either lacks them)."""
    ours, theirs = (_forget_truth_ratios(s) for s in (sections, reference["sections"]))
    if ours is None or theirs is None:
        return None
    return stats.ks_pvalue(ours, theirs)


def privleak(sections: Sections, reference: dict[str, Any]) -> float | None:
    """MUSE PrivLeak of the Min-K% AUC against the reference's (None if either lacks it)."""
    ours = sections.get("mia", {}).get("aggregates", {}).get("min_k_auc")
    theirs = reference["sections"].get("mia", {}).get("aggregates", {}).get("min_k_auc")
    return None if ours is None or theirs is None else stats.privleak(ours, theirs)


def load_reference(path: str | Path, benchmark: str, split: str) -> dict[str, Any]:
    """A saved evaluation (``eval.json`` or its directory) of the same benchmark and split."""
    path = Path(path)
    path = path / "eval.json" if path.is_dir() else path
    if not path.is_file():
        raise WagleError(f"reference evaluation not found: {path}")
    try:
        reference = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise WagleError(f"reference {path} is not valid JSON: {err}") from None
    if not isinstance(reference, dict) or "sections" not in reference:
        raise WagleError(f"{path} is not a wagle evaluation (no 'sections')")
    if (reference.get("benchmark"), reference.get("split")) != (benchmark, split):
        raise WagleError(
            f"reference {path} evaluated {reference.get('benchmark')}/{reference.get('split')}, "
            f"not {benchmark}/{split}: evaluate the retain model on the same benchmark and split"
        )
    reference["path"] = str(path)
    return reference


def _forget_truth_ratios(sections: Sections) -> list[float] | None:
    return sections.get("forget", {}).get("per_sample", {}).get("truth_ratio")
