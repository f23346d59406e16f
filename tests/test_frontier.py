"""The study on the frontier: aggressiveness axes in the grid, forget quality on two fixed halves
of the forget authors, the best point at equal utility (split-half and in-sample), and the
step-0 point measured once per experiment."""

from __future__ import annotations

import json
import math

import pytest

from tiny_study import RECIPE, workspace
from wagle.errors import WagleError
from wagle.evaluation.halves import forget_halves, half_forget_qualities
from wagle.experiment import Cell, grid, load_recipe
from wagle.report.frontier import Point, best_point, frontier, frontier_points

# ---- the grid's aggressiveness axes ------------------------------------------------------


def test_learning_rates_and_epochs_multiply_the_grid_and_name_the_cells():
    r = load_recipe(None, methods={"npo": {}, "graddiff": {"learning_rates": [5e-3]}},
                    masks=["dense", "wagle"], ratios=[0.5], learning_rates=[1e-3, 2e-3],
                    epochs=[5, 10])  # fmt: skip
    cells = grid(r)
    # npo: 2 lrs × 2 epochs × 2 masks; graddiff: its own lr list (1) × 2 epochs × 2 masks
    assert len(cells) == 8 + 4
    assert cells[0] == Cell("npo", "dense", 1.0, 0, 1e-3, 5.0)
    assert cells[0].id == "npo-dense-lr0.001-e5-s0"
    assert Cell("npo", "wagle", 0.5, 0, 2e-3).id == "npo-wagle-r0.5-lr0.002-s0"
    assert {c.learning_rate for c in cells if c.method == "graddiff"} == {5e-3}
    run, _ = r.unlearn_options("graddiff")  # the axis list is not an unlearn option
    assert "learning_rates" not in run


def test_without_axes_cells_keep_their_ids():
    assert [c.id for c in grid(load_recipe(None, methods=["npo"], masks=["dense", "wagle"]))] == [
        "npo-dense-s0",
        "npo-wagle-r0.5-s0",
    ]


@pytest.mark.parametrize("values", [{"learning_rates": [0]}, {"epochs": ["x"]},
                                    {"methods": {"npo": {"learning_rates": [-1e-3]}}}])  # fmt: skip
def test_axes_must_be_positive_numbers(values):
    with pytest.raises(WagleError, match="must be a list of numbers > 0"):
        load_recipe(None, **values)


# ---- the halves --------------------------------------------------------------------------


def test_halves_split_by_author_when_records_name_one():
    records = [{"author": a, "question": f"{a} q{i}"} for a in "PQRS" for i in range(3)]
    halves = forget_halves(records)
    by_author = {a: {halves[f"{a} q{i}"] for i in range(3)} for a in "PQRS"}
    assert all(len(sides) == 1 for sides in by_author.values())  # an author is never split
    assert sorted(s.pop() for s in by_author.values()) == ["a", "a", "b", "b"]
    assert forget_halves(records) == halves  # fixed
    plain = forget_halves([{"question": f"q{i}"} for i in range(6)])
    assert sorted(plain.values()) == ["a"] * 3 + ["b"] * 3  # by question without authors


def test_each_half_is_a_ks_test_against_the_same_half_of_the_reference():
    """Half A: ours [1, 2, 3] vs the reference's [1, 2, 3]: identical samples, p = 1. Half B:
    ours [10, 11] vs [1, 2]: fully separated, D = 1; the exact two-sided p-value of two samples
    of 2 is the share of the C(4, 2) = 6 orderings that separate them as much: 2/6 = 0.3333."""
    halves = {"a1": "a", "a2": "a", "a3": "a", "b1": "b", "b2": "b"}
    questions = ["a1", "b1", "a2", "b2", "a3"]
    reference = {"sections": {"forget": {"per_sample": {
        "question": ["b2", "a1", "a2", "a3", "b1"], "truth_ratio": [2, 1, 2, 3, 1]}}}}  # fmt: skip
    result = half_forget_qualities(questions, [1, 10, 2, 11, 3], reference, halves)
    assert result["forget_quality_half_a"] == pytest.approx(1.0)
    assert result["forget_quality_half_b"] == pytest.approx(1 / 3)
    assert half_forget_qualities(questions, [1] * 5, None, halves) == {
        "forget_quality_half_a": None,
        "forget_quality_half_b": None,
    }


# ---- the best point at equal utility -----------------------------------------------------


def point(seed, step, utility, fq, a, b, degenerate=False, mask="wagle"):
    return Point("npo", mask, seed, f"npo-{mask}-s{seed}", step, utility, fq, a, b, degenerate)


SEED0 = [
    point(0, 0, 1.00, 1e-10, 1e-8, 1e-6),
    point(0, 1, 0.97, 1e-4, 1e-3, 1e-5),
    point(0, 2, 0.92, 1e-2, 1e-1, 1e-2),
    point(0, 3, 0.96, 1e-1, 1e-4, 1e-3),
    point(0, 4, 0.99, 0.5, 0.5, 0.5, degenerate=True),
]


def test_best_point_is_chosen_on_half_a_and_reported_on_half_b():
    """At utility ≥ 0.95 the candidates are steps 0, 1, 3 (step 4 is degenerate, step 2 too
    low). Split-half: the highest half-A FQ is step 1's (1e-3), reported by its half B: 1e-5.
    In-sample: the highest whole-split FQ is step 3's, 1e-1, reported as is. At ≥ 0.90 step 2
    joins (half A 1e-1 → its half B 1e-2; in-sample step 3 still wins). At ≥ 0.99 only the
    target is left."""
    assert best_point(SEED0, 0.95, "split").step == 1
    assert best_point(SEED0, 0.95, "whole").step == 3
    assert (best_point(SEED0, 0.90, "split").step, best_point(SEED0, 0.90, "whole").step) == (2, 3)
    assert best_point(SEED0, 0.99, "split").step == 0


def test_frontier_is_mean_and_std_of_log10_over_seeds():
    """Seed 0 at ≥ 0.95 reports half B 1e-5; seed 1's best on half A (the only point above
    the target) reports 1e-7: log10 −5 and −7, mean −6, std √2."""
    seed1 = [point(1, 0, 1.0, 1e-9, 1e-9, 1e-9), point(1, 5, 0.98, 1e-3, 1e-2, 1e-7)]
    (row,) = [b for b in frontier(SEED0 + seed1, "split") if b.level == 0.95]
    assert row.mean == pytest.approx(-6.0) and row.std == pytest.approx(math.sqrt(2))
    assert {s: p.step for s, p in row.chosen.items()} == {0: 1, 1: 5}
    # at ≥ 0.99 only the targets are left: whole-split FQ 1e-10 and 1e-9
    (whole,) = [b for b in frontier(SEED0 + seed1, "whole") if b.level == 0.99]
    assert whole.mean == pytest.approx(-9.5)


def test_points_are_relative_to_their_cells_step_0():
    from dataclasses import replace

    from test_experiment_result import evaluation, record

    r = replace(record(evaluation()), cell="c")
    trajectory = [{"step": 0, "model_utility": 0.5, "forget_quality": 0.1},
                  {"step": 3, "model_utility": 0.45, "forget_quality": 0.2, "degenerate": True}]  # fmt: skip
    points = frontier_points([r], {"c": trajectory})
    assert [(p.step, p.utility, p.degenerate) for p in points] == [(0, 1.0, False), (3, 0.9, True)]
    assert frontier_points([r], {"c": trajectory[1:]}) == []  # no step 0: nothing to compare


def test_by_ratio_each_ratio_of_a_mask_is_a_mask_of_its_own():
    """Two WAGLE ratios and dense: one 'wagle' group, or 'wagle ρ0.5' and 'wagle ρ0.95' by
    ratio; dense has no ratio and keeps its name."""
    from dataclasses import replace

    from test_experiment_result import evaluation, record

    base = record(evaluation())
    records = [replace(base, cell="a", ratio=0.5), replace(base, cell="b", ratio=0.95),
               replace(base, cell="d", mask="dense", ratio=1.0)]  # fmt: skip
    start = [{"step": 0, "model_utility": 0.5, "forget_quality": 0.1}]
    trajectories = {r.cell: start for r in records}
    assert [p.mask for p in frontier_points(records, trajectories)] == ["wagle", "wagle", "dense"]
    by_ratio = frontier_points(records, trajectories, by_ratio=True)
    assert [p.mask for p in by_ratio] == ["wagle ρ0.5", "wagle ρ0.95", "dense"]


# ---- end to end: a frontier study of the tiny model --------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """npo × (WAGLE 0.5, Wanda 0.5, LoRA) × learning rates 1e-2 and 3e-2, one epoch of 3
    steps, points at steps 0 and 3; the measurements are counted."""
    import wagle.unlearning.trajectory as trajectory
    from wagle.experiment.runner import run_experiment

    root = tmp_path_factory.mktemp("frontier")
    paths = workspace(root)
    recipe = load_recipe(None, **(RECIPE | {
        "model": str(paths["model"]), "retain_model": str(paths["retain"]),
        "data": str(paths["data"]), "methods": {"npo": {}},
        "masks": ["wagle", "wanda", "lora"], "learning_rates": [1e-2, 3e-2],
        "unlearn": RECIPE["unlearn"] | {"epochs": 1, "eval_every": 3},
    }))  # fmt: skip
    measured, real = [], trajectory.TrajectoryCallback._measure

    def count(self, state, control, model):
        measured.append(state.global_step)
        return real(self, state, control, model)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trajectory.TrajectoryCallback, "_measure", count)
        run_experiment(recipe, root / "run", say=lambda line: None)
    from wagle.report import write_report

    return root / "run", write_report(root / "run"), measured


def test_the_step_0_point_is_measured_once_and_shared(study):
    out, _, measured = study
    assert sorted(measured) == [0] + [3] * 6
    starts = [json.loads(p.read_text())["points"][0] for p in out.glob("cells/*/trajectory.json")]
    assert len(starts) == 6 and all(s == starts[0] for s in starts)


def test_every_point_records_both_halves(study):
    out, *_ = study
    halves = json.loads((out / "halves.json").read_text())
    assert halves["unit"] == "author" and len(halves["a"]) == len(halves["b"]) == 6
    for path in out.glob("cells/*/trajectory.json"):
        for p in json.loads(path.read_text())["points"]:
            assert p["forget_quality_half_a"] is not None and p["forget_quality_half_b"] is not None
    record = json.loads((out / "cells" / "npo-lora-lr0.03-s0" / "result.json").read_text())
    assert record["learning_rate"] == 0.03 and record["forget_quality_half_b"] is not None


def test_the_report_table_is_the_best_half_b_of_the_best_half_a(study):
    """Recomputed from the trajectory files: at utility ≥ 0.95 × step 0's, among the mask's
    non-degenerate points of both learning rates, the highest half-A FQ's half-B FQ."""
    out, report, _ = study
    text = report.path.read_text()
    assert "## Frontier: best forget quality at equal utility" in text
    assert "(the halves: 6 and 6 questions, split by author" in text
    for mask in ("wagle", "wanda", "lora"):
        points = []
        for path in out.glob(f"cells/npo-{mask}-*/trajectory.json"):
            saved = json.loads(path.read_text())["points"]
            points += [(p["forget_quality_half_a"], p["model_utility"] / saved[0]["model_utility"],
                        -p["step"], p["forget_quality_half_b"]) for p in saved
                       if not p["degenerate"]]  # fmt: skip
        best = max(p for p in points if p[1] >= 0.95)
        expected = f"{math.log10(best[3]):.1f}"
        row = next(line for line in text.splitlines() if line.startswith(f"| npo | {mask} |"))
        assert row.split(" | ")[3] == expected, (mask, row)
    assert (out / "frontier.png").is_file()
    # the terminal gets the same table (wagle run / wagle report print it first)
    assert report.frontier.splitlines()[0].split()[:4] == ["method", "mask", "utility", "≥"]


def test_the_report_adds_the_by_ratio_table_only_when_a_mask_ran_at_two_ratios(
    monkeypatch, tmp_path
):
    """WAGLE at ρ 0.5 and 0.95 and dense: the headline table has rows 'wagle' and 'dense', the
    by-ratio table rows 'wagle ρ0.5', 'wagle ρ0.95' and 'dense'. WAGLE at one ratio: no
    by-ratio table."""
    from dataclasses import replace

    from test_experiment_result import evaluation, record
    from wagle.report import write

    base = record(evaluation())
    records = [replace(base, cell="a", ratio=0.5), replace(base, cell="b", ratio=0.95),
               replace(base, cell="d", mask="dense", ratio=1.0)]  # fmt: skip
    start = [{"step": 0, "model_utility": 0.5, "forget_quality": 0.1,
              "forget_quality_half_a": 0.2, "forget_quality_half_b": 0.3}]  # fmt: skip
    monkeypatch.setattr(write.res, "trajectories", lambda root: {r.cell: start for r in records})
    monkeypatch.setattr(write.res, "halves", lambda root: None)
    lines = write._frontier_lines(tmp_path, records)
    by_ratio = lines[
        lines.index("By ratio (split-half, as above, each ratio of a mask method on its own):") :
    ]
    assert [row.split(" | ")[1] for row in by_ratio if row.startswith("| npo")] == [
        "wagle ρ0.5", "wagle ρ0.95", "dense"
    ]  # fmt: skip
    assert not any(
        line.startswith("By ratio") for line in write._frontier_lines(tmp_path, records[1:])
    )
