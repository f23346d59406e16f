"""Experiment tracking: ``--report-to tensorboard`` writes the step terms and every trajectory
point at its step, read back here from the event files; a tracker that is not installed is one
line before any model is loaded."""

from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from wagle.cli import main
from wagle.data.playground import write
from wagle.unlearning.config import UnlearnConfig
from wagle.unlearning.tracking import point_metrics

FAST_EVAL = ["--max-new-tokens", "4", "--batch-size", "16"]


@pytest.fixture
def workspace(tmp_path, saved_inputs, tiny_model, tokenizer, micro_splits):
    """Tiny target, forget/retain files, benchmark data and a retain model's evaluation."""
    saved_inputs(n_retain=8)
    write(micro_splits, tmp_path / "data")
    tiny_model(seed=7).save_pretrained(tmp_path / "retain")
    tokenizer.save_pretrained(tmp_path / "retain")
    args = ["evaluate", "--model", str(tmp_path / "retain"), "--data", str(tmp_path / "data")]
    assert main([*args, "--out", str(tmp_path / "ref"), *FAST_EVAL]) == 0
    return tmp_path


def _unlearn(ws, *extra: str) -> list[str]:
    return [
        "unlearn", "--model", str(ws / "model"), "--forget", str(ws / "forget.jsonl"),
        "--retain", str(ws / "retain.jsonl"), "--out", str(ws / "out"), "--method", "graddiff",
        "--max-steps", "3", "--batch-size", "2", "--gradient-accumulation-steps", "1",
        "--learning-rate", "5e-2", "--max-length", "48", "--no-progress",
        "--eval-reference", str(ws / "ref" / "eval.json"), "--eval-every", "2",
        "--eval-forget-size", "4", "--eval-retain-size", "4", *extra,
    ]  # fmt: skip


def _scalars(directory) -> dict[str, dict[int, float]]:
    events = EventAccumulator(str(directory))
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_tensorboard_gets_every_step_and_every_point_at_its_step(workspace):
    """Points at steps 0, 2 and 3 (the last), steps 1..3 of the step log: each value in the
    event files equals the one in trajectory.json / training_log.json (float32 in the file)."""
    assert main(_unlearn(workspace, "--report-to", "tensorboard", "--run-name", "npo-try")) == 0
    out = workspace / "out"
    scalars = _scalars(out / "runs" / "npo-try")
    points = json.loads((out / "trajectory.json").read_text())["points"]
    assert [p["step"] for p in points] == [0, 2, 3]
    for point in points:
        for key, value in point_metrics(point).items():
            tag = key.replace("eval_", "eval/", 1)  # the integrations' eval/ and train/ groups
            assert scalars[tag][point["step"]] == pytest.approx(value, rel=1e-6), tag
    assert {"eval/forget_quality", "eval/log10_forget_quality", "eval/model_utility",
            "eval/forget_rouge", "eval/degenerate", "eval/repetition"} <= set(scalars)  # fmt: skip
    steps = json.loads((out / "training_log.json").read_text())["steps"]
    for name in ("loss", "forget_nll", "retain_nll", "lr"):
        logged = {s["step"]: pytest.approx(s[name], rel=1e-6, abs=1e-12) for s in steps}
        assert scalars[f"train/{name}"] == logged, name


def test_point_metrics_leave_out_missing_figures():
    """Without a reference forget quality is None: not logged; degenerate becomes 0/1."""
    point = {"step": 3, "forget_quality": None, "forget_prob": 0.25, "degenerate": True}
    assert point_metrics(point) == {"eval_forget_prob": 0.25, "eval_degenerate": 1.0}
    assert point_metrics({"forget_quality": 1e-20})["eval_log10_forget_quality"] == -20.0


def test_a_tracker_that_is_not_installed_is_one_line_before_loading(
    tmp_path, saved_inputs, monkeypatch, capsys
):
    saved_inputs()
    monkeypatch.setattr("wagle.extras.find_spec", lambda name: None)
    monkeypatch.setattr("wagle.models.load_pretrained", pytest.fail)
    assert main(_unlearn(tmp_path, "--report-to", "wandb")) == 2
    assert capsys.readouterr().err.strip() == (
        "wagle: error: --report-to wandb needs the wandb package: pip install wandb"
    )
    assert not (tmp_path / "out").exists()


def test_report_to_none_and_unknown_trackers():
    assert UnlearnConfig().report_to == [] == UnlearnConfig(report_to="none").report_to
    with pytest.raises(Exception, match="unknown tracker 'comet'"):
        UnlearnConfig(report_to=["comet"])


def test_each_experiment_cell_is_a_run_of_the_experiments_group(tmp_path):
    """`wagle run` names each cell's run after the cell and groups it under the experiment; the
    tracking options leave the cell's hash (what decides a re-run) unchanged."""
    from types import SimpleNamespace

    from wagle.evaluation.config import EvalConfig
    from wagle.experiment import load_recipe
    from wagle.experiment.cells import Cell
    from wagle.experiment.runner import Runner

    (tmp_path / "ref.json").write_text("{}")
    setup = SimpleNamespace(
        recipe=load_recipe(None, methods=["npo"], masks=["dense"]),
        root=tmp_path / "study-a", model_path="m", data="d", eval_config=EvalConfig(),
        reference={"path": str(tmp_path / "ref.json")},
    )  # fmt: skip
    cell = Cell("npo", "dense", 1.0, 0)
    runner = Runner(setup, say=lambda line: None)
    plain, options = runner.unlearn_config(cell, tmp_path / "cell")
    setup.recipe = load_recipe(None, methods=["npo"], masks=["dense"],
                               unlearn={"report_to": ["tensorboard"]})  # fmt: skip
    tracked, _ = runner.unlearn_config(cell, tmp_path / "cell")
    assert (tracked.run_name, tracked.run_group, tracked.report_to) == (
        "npo-dense-s0", "study-a", ["tensorboard"]
    )  # fmt: skip
    assert runner.cell_config(cell, tracked, options) == runner.cell_config(cell, plain, options)
