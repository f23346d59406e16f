"""Headline figures from sections: model utility, forget quality, efficacy, reference checks."""

from __future__ import annotations

import json

import pytest

from wagle.errors import WagleError
from wagle.evaluation.summary import UTILITY_FIGURES, load_reference, summarise


def section(**aggregates: float) -> dict:
    return {"n": 1, "aggregates": aggregates, "per_sample": {}}


def qa_sections(forget_ratios: list[float]) -> dict:
    utility = {"probability": 0.5, "rouge_l_recall": 1.0, "truth_ratio": 0.25}
    forget = section(probability=0.8, rouge_l_recall=0.6, truth_ratio=0.3)
    forget["per_sample"] = {"truth_ratio": forget_ratios}
    return {
        "forget": forget,
        **{name: section(**utility) for name in ("retain", "real_authors", "world_facts")},
        "mia": section(min_k_auc=0.9, loss_auc=0.8),
    }


def test_model_utility_is_the_harmonic_mean_of_the_nine_figures():
    """Three times (0.5, 1, 0.25): 9 / (3·(2 + 1 + 4)) = 9/21 = 3/7."""
    summary = summarise(qa_sections([0.1, 0.2]), reference=None)
    assert summary["model_utility"] == pytest.approx(3 / 7)
    assert summary["utility"] == pytest.approx(3 / 7)
    assert set(UTILITY_FIGURES) <= set(summary["figures"])


def test_without_a_reference_there_is_no_forget_quality():
    """Efficacy terms 1 − 0.8, 1 − 0.6 and 1 − 2·|0.9 − 0.5| = 0.2: mean (0.2+0.4+0.2)/3."""
    summary = summarise(qa_sections([0.1, 0.2]), reference=None)
    assert summary["forget_quality"] is None and summary["privleak"] is None
    assert summary["forget_efficacy"] == pytest.approx(0.8 / 3)


def test_a_model_against_its_own_evaluation_has_forget_quality_one():
    """KS of identical samples: p = 1. PrivLeak (0.9 − 0.9)/(1 − 0.9) = 0. Efficacy gains the term 1."""
    sections = qa_sections([0.1, 0.2, 0.7])
    summary = summarise(sections, reference={"sections": sections})
    assert summary["forget_quality"] == 1.0
    assert summary["privleak"] == 0.0
    assert summary["forget_efficacy"] == pytest.approx((1 + 0.8) / 4)


def test_sections_without_qa_figures_have_no_model_utility():
    summary = summarise({"mcq": section(accuracy=0.7)}, reference=None)
    assert summary["model_utility"] is None and summary["utility"] is None
    assert summary["forget_efficacy"] is None
    assert summary["figures"] == {"mcq.accuracy": 0.7}


def test_reference_may_be_a_directory_holding_eval_json(tmp_path):
    (tmp_path / "eval.json").write_text(
        json.dumps({"benchmark": "playground", "split": "forget05", "sections": {}})
    )
    assert load_reference(tmp_path, "playground", "forget05")["path"] == str(tmp_path / "eval.json")


def test_reference_of_another_split_is_refused(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"benchmark": "playground", "split": "forget05", "sections": {}}))
    with pytest.raises(WagleError, match="same benchmark and split"):
        load_reference(path, "playground", "forget10")


def test_reference_that_is_not_an_evaluation_is_refused(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text("[1, 2]")
    with pytest.raises(WagleError, match="not a wagle evaluation"):
        load_reference(path, "playground", "forget10")
