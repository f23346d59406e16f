"""The fidelity checks of a playground build, on a micro build: every figure is recomputed here
from the evaluations the build saved, and each verdict must follow from its figures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from wagle.cli import main
from wagle.evaluation.stats import ks_pvalue
from wagle.evaluation.summary import UTILITY_FIGURES
from wagle.playground import PlaygroundConfig, build_playground
from wagle.playground.build import _finetune_models, noise_model
from wagle.playground.fidelity import measure_fidelity

MICRO = dict(size="micro", n_authors=20, qa_per_author=10, n_holdout=2, jobs=1, noise_floor=True)
MICRO |= dict(world_authors=20, world_countries=20, n_world_facts=10)
CHECKS = {
    "utility_not_pinned",
    "world_kept",
    "utility_can_be_hurt",
    "retain_like_holdout",
    "noise_floor",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(info, fidelity.json) of a micro build with the fidelity figures."""
    path = tmp_path_factory.mktemp("wagle_home")
    old = os.environ.get("WAGLE_HOME")
    os.environ["WAGLE_HOME"] = str(path)
    info = build_playground(PlaygroundConfig(**MICRO), progress=False)
    yield info, json.loads((Path(info["target"]).parent / "fidelity.json").read_text())
    if old is None:
        del os.environ["WAGLE_HOME"]
    else:
        os.environ["WAGLE_HOME"] = old


def saved_eval(info, name):
    name = {"retain": "retain-forget10", "noise": "retain-forget10-seed1000"}.get(name, name)
    return json.loads((Path(info["target"]).parent / "evals" / name / "eval.json").read_text())


def test_every_check_is_recorded_with_its_verdict(built):
    info, fidelity = built
    assert set(fidelity["checks"]) == CHECKS == set(info["fidelity"]["checks"])
    assert fidelity["passed"] == all(c["passed"] for c in fidelity["checks"].values())
    for check in fidelity["checks"].values():
        assert check["summary"] and check["criterion"]


def test_noise_floor_is_the_ks_test_of_two_retain_models(built):
    info, fidelity = built
    ratios = [saved_eval(info, n)["sections"]["forget"]["per_sample"]["truth_ratio"] for n in ("noise", "retain")]  # fmt: skip
    check = fidelity["checks"]["noise_floor"]
    assert check["measured"]["forget_quality"] == ks_pvalue(*ratios)
    assert check["passed"] == (ks_pvalue(*ratios) >= 0.1)


def test_utility_gaps_are_measured_against_a_random_model(built):
    _, fidelity = built
    target, random = fidelity["figures"]["target"], fidelity["figures"]["random"]
    smallest = min(target[f] - random[f] for f in UTILITY_FIGURES)
    check = fidelity["checks"]["utility_not_pinned"]
    assert check["measured"]["smallest_gap"] == pytest.approx(smallest)
    assert check["passed"] == (smallest >= 0.2)


def test_world_kept_compares_real_world_figures_with_the_base(built):
    _, fidelity = built
    figures = fidelity["figures"]
    drops = [
        figures["base"][f] - figures[m][f]
        for m in ("target", "retain")
        for f in UTILITY_FIGURES
        if not f.startswith("retain.")
    ]
    check = fidelity["checks"]["world_kept"]
    assert check["measured"]["largest_drop"] == pytest.approx(max(drops))
    assert check["passed"] == (max(drops) <= 0.1)


def test_retain_model_is_compared_with_its_own_holdout_figures(built):
    info, fidelity = built
    retain = saved_eval(info, "retain")["sections"]["forget"]["aggregates"]["rouge_l_recall"]
    measured = fidelity["checks"]["retain_like_holdout"]["measured"]
    assert measured["forget_rouge"] == retain
    gap_ok = abs(measured["forget_rouge"] - measured["holdout_rouge"]) <= 0.05
    expected = gap_ok and measured["truth_ratio_ks_pvalue"] >= 0.05
    assert fidelity["checks"]["retain_like_holdout"]["passed"] == expected


def test_gradient_ascent_stops_at_the_retain_models_forget_rouge(built):
    _, fidelity = built
    measured = fidelity["checks"]["utility_can_be_hurt"]["measured"]
    steps = [step for step, _ in measured["rouge_by_step"]]
    assert steps == list(range(5, 5 * len(steps) + 1, 5))  # checked every 5 steps
    above = [rouge >= measured["retain_forget_rouge"] for _, rouge in measured["rouge_by_step"]]
    assert all(above[:-1])  # it ran until the first check below the retain model's ROUGE
    if measured["drop"] is not None:
        assert not above[-1]
        assert measured["drop"] == pytest.approx(
            1 - measured["utility"] / measured["target_utility"]
        )


def test_the_noise_floor_is_measured_only_when_asked(built, tmp_path):
    info, _ = built
    config = PlaygroundConfig(**MICRO | dict(noise_floor=False))
    assert noise_model(config) not in _finetune_models(config)
    cheap = measure_fidelity(config, info, tmp_path / "fidelity.json", progress=False)
    assert set(cheap["checks"]) == CHECKS - {"noise_floor"}


def test_info_prints_the_checks(built, capsys):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in MICRO.items() if k != "noise_floor"]
    flags.append("--noise-floor")
    assert main(["playground", "info", *flags]) == 0
    out = capsys.readouterr().out
    assert "fidelity:" in out and all(name in out for name in CHECKS)
