"""Experiment recipes, their grid of cells, the automatic ratio search and report grouping."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from wagle.errors import WagleError
from wagle.experiment import Cell, Probe, grid, load_recipe, search_ratio
from wagle.experiment.auto_ratio import COARSE
from wagle.experiment.cells import auto_searches
from wagle.experiment.result import CellResult
from wagle.report.results import group, pareto_front
from wagle.report.write import SWEEP


def recipe(**values):
    return load_recipe(None, **values)


# ---- recipe and grid ---------------------------------------------------------------------


def test_grid_is_methods_by_masks_by_ratios_by_seeds_and_dense_takes_no_ratio():
    cells = grid(recipe(methods=["npo", "graddiff"], masks=["dense", "wagle", "lora"],
                        ratios=[0.5, 0.8], seeds=[0, 1]))  # fmt: skip
    # per seed and method: dense + lora + wagle at 2 ratios = 4 cells; 2 methods × 2 seeds
    assert len(cells) == 16
    assert cells[:4] == [
        Cell("npo", "dense", 1.0, 0),
        Cell("npo", "wagle", 0.5, 0),
        Cell("npo", "wagle", 0.8, 0),
        Cell("npo", "lora", 1.0, 0),
    ]
    assert [c.id for c in cells[:2]] == ["npo-dense-s0", "npo-wagle-r0.5-s0"]


def test_auto_ratio_is_searched_per_method_score_mask_and_seed():
    r = recipe(methods=["npo"], masks=["dense", "wagle", "random"], ratios=["auto"], seeds=[0])
    assert grid(r) == [Cell("npo", "dense", 1.0, 0)]
    assert auto_searches(r) == [Cell("npo", "wagle", 0.0, 0), Cell("npo", "random", 0.0, 0)]


def test_method_overrides_apply_over_shared_options():
    with pytest.raises(WagleError, match="do not apply to method 'graddiff'"):
        # beta is NPO's: the block shared by every method may not set it
        recipe(methods={"npo": {}, "graddiff": {}}, unlearn={"epochs": 3, "beta": 0.1})
    r = recipe(methods={"npo": {"beta": 0.2, "epochs": 7}}, unlearn={"epochs": 3})
    run, options = r.unlearn_options("npo")
    assert (run["epochs"], run["method"], options["beta"]) == (7, "npo", 0.2)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"masks": ["dense", "wagel"]}, "unknown mask method"),
        ({"methods": ["npo", "dpo"]}, "unknown unlearning method"),
        ({"ratios": [0.5, 1.5]}, "a ratio is a number in"),
        ({"ratios": ["half"]}, "a ratio is a number in"),
        ({"unlearn": {"learning_rate": -1}}, "learning_rate"),
        ({"utility_floor": 2}, "utility_floor"),
        ({"colour": "red"}, "unknown ExperimentRecipe option"),
    ],
)
def test_bad_recipes_fail_before_anything_runs(values, message):
    with pytest.raises(WagleError, match=message):
        recipe(**values)


# ---- automatic ratio ---------------------------------------------------------------------


def curve(peak: float, width: float = 0.2, slope: float = 0.3):
    """FQ a Gaussian bump at ``peak``; utility falling linearly with the ratio."""

    def probe(ratio: float) -> Probe:
        return Probe(ratio, math.exp(-(((ratio - peak) / width) ** 2)), 1 - slope * ratio)

    return probe


def sweep_best(probe, floor: float) -> Probe:
    feasible = [p for p in map(probe, SWEEP) if p.utility >= floor and not p.degenerate]
    return max(feasible, key=lambda p: p.forget_quality)


def test_auto_ratio_finds_the_sweep_optimum_under_the_floor_in_nine_runs():
    """FQ peaks at 0.62; utility 1 − 0.3ρ ≥ 0.8 allows ρ ≤ 0.667.

    coarse 0.15 .35 .55 (.75 and .95 break the floor) → best 0.55 (FQ e^-0.1225 = 0.885);
    ±0.1: 0.45, 0.65 (FQ e^-0.0225 = 0.978) → best 0.65; ±0.05: 0.6 (FQ e^-0.01 = 0.990),
    0.7 (utility 0.79 < 0.8) → 0.6, the full sweep's best, after 9 runs instead of 19."""
    result = search_ratio(curve(0.62), floor=0.8)
    assert result.ratio == 0.6 == sweep_best(curve(0.62), 0.8).ratio
    assert [p.ratio for p in result.probes] == [0.15, 0.35, 0.55, 0.75, 0.95, 0.45, 0.65, 0.6, 0.7]
    assert result.met_floor and "utility ≥ 0.8" in result.reason


def test_auto_ratio_stops_at_the_floor_when_forgetting_grows_with_the_ratio():
    """Log-scale FQ rising 30 orders of magnitude from ρ 0 to 1; utility 1 − 0.5ρ ≥ 0.64 → ρ ≤ 0.72."""

    def probe(ratio):
        return Probe(ratio, 10 ** (-30 + 30 * ratio), 1 - 0.5 * ratio)

    result = search_ratio(probe, floor=0.64)
    assert result.ratio == 0.7
    assert len(result.probes) == 9


@pytest.mark.parametrize("peak", SWEEP)
def test_auto_ratio_within_5_percent_of_the_full_sweep_for_any_peak(peak):
    for floor in (0.0, 0.8):
        probe = curve(peak, width=0.25)
        auto = next(p for p in search_ratio(probe, floor).probes
                    if p.ratio == search_ratio(probe, floor).ratio)  # fmt: skip
        assert auto.forget_quality >= 0.95 * sweep_best(probe, floor).forget_quality


def test_auto_ratio_skips_degenerate_cells():
    def probe(ratio):
        return Probe(ratio, ratio, 1.0, degenerate=ratio > 0.6)

    assert search_ratio(probe, floor=0.5).ratio == 0.6


def test_auto_ratio_without_a_feasible_ratio_keeps_the_highest_utility_and_says_so():
    result = search_ratio(curve(0.5), floor=2.0)
    assert result.ratio == 0.05 and not result.met_floor
    assert "no probed ratio met" in result.reason


# ---- report grouping ---------------------------------------------------------------------


def record(seed, fq, mu, mask="wagle", degenerate=False):
    seconds = {"attribute": 1.0, "unlearn": 10.0 + seed, "evaluate": 5.0}
    return CellResult(
        cell=f"npo-{mask}-s{seed}", method="npo", mask=mask, ratio=0.5, seed=seed,
        forget_quality=fq, model_utility=mu, forget_rouge=None, retain_rouge=None,
        forget_probability=None, mia_auc=None, privleak=None, degenerate=degenerate,
        selected_step=1, steps=1, seconds=seconds, config_hash="",
    )  # fmt: skip


def test_rows_are_mean_and_sample_std_over_seeds():
    """FQ 0.1, 0.3 → mean 0.2, std √((0.01+0.01)/1) = 0.1414; unlearn s 10, 11 → 10.5."""
    (row,) = group([record(0, 0.1, 0.5), record(1, 0.3, 0.7, degenerate=True)])
    assert row.seeds == [0, 1] and row.degenerate == 1
    assert row.mean["forget_quality"] == pytest.approx(0.2)
    assert row.std["forget_quality"] == pytest.approx(math.sqrt(0.02))
    assert row.seconds["unlearn"] == 10.5
    assert row.mean["mia_auc"] is None
    # log10 FQ: −1 and log10 0.3 = −0.523 → mean −0.761
    assert row.mean["log10_forget_quality"] == pytest.approx(-0.7614, abs=1e-4)


def test_pareto_front_keeps_the_undominated_points():
    points = [(0.5, 0.1), (0.6, 0.05), (0.4, 0.2), (0.45, 0.09), (0.6, 0.01)]
    # (0.45, 0.09) is beaten by (0.5, 0.1); (0.6, 0.01) by (0.6, 0.05)
    assert pareto_front(points) == [2, 0, 1]


def test_runner_auto_ratio_uses_the_floor_relative_to_the_target_and_records_the_search(tmp_path):
    """Target utility 0.8, floor 0.95 → absolute floor 0.76; utility 1 − 0.3ρ ≥ 0.76 → ρ ≤ 0.8;
    FQ = ρ: the search ends at 0.8 and writes DIR/auto/npo-wagle-s0.json."""
    from types import SimpleNamespace

    from wagle.experiment.runner import Runner

    setup = SimpleNamespace(
        recipe=recipe(utility_floor=0.95), root=tmp_path, target_eval={"model_utility": 0.8}
    )
    runner = Runner(setup, say=lambda line: None)
    ran = []

    def run(cell, position="auto"):
        ran.append(cell)
        return dataclasses.replace(
            record(0, cell.ratio, 1 - 0.3 * cell.ratio),
            seconds={"unlearn": 2.0, "evaluate": 1.0},
        )

    runner.run = run
    summary = runner.auto_ratio(Cell("npo", "wagle", 0.0, 0))
    assert summary["ratio"] == 0.8 and summary["floor"] == pytest.approx(0.76)
    assert {c.mask for c in ran} == {"wagle"} and summary["runs"] == len(ran) == 9
    assert summary["seconds"] == 27.0
    saved = json.loads((tmp_path / "auto" / "npo-wagle-s0.json").read_text())
    assert saved["ratio"] == 0.8 and [p["ratio"] for p in saved["probes"]][:5] == list(COARSE)


def test_report_of_a_directory_without_finished_cells_is_a_user_error(tmp_path, capsys):
    from wagle.cli import main

    assert main(["report", str(tmp_path)]) == 2
    assert "no finished cells" in capsys.readouterr().err


def test_cell_hash_ignores_options_at_their_defaults():
    """A newer wagle adding an option with a default must not invalidate finished cells."""
    from wagle.experiment.runner import _changed

    cell = Cell("npo", "dense", 1.0, 0)
    config = {"cell": {}, "unlearn": {"learning_rate": 1e-3, "epochs": 5.0, "brand_new": 1},
              "method_options": {"beta": 0.1, "retain_weight": 10.0}, "attribution": None,
              "evaluation": {"batch_size": 64, "max_new_tokens": 32}, "reference": "ab"}  # fmt: skip
    trimmed = _changed(config, cell)
    # epochs 5.0 and batch_size 64 are defaults; learning_rate, max_new_tokens are not; brand_new
    # is unknown to this version: kept
    assert trimmed["unlearn"] == {"learning_rate": 1e-3, "brand_new": 1}
    assert trimmed["evaluation"] == {"max_new_tokens": 32}
    assert trimmed["method_options"] == {"retain_weight": 10.0}
    assert trimmed["reference"] == "ab" and trimmed["attribution"] is None
