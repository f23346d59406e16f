"""A cell's result is one typed record (``CellResult``): a renamed key fails, never a null."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from wagle.experiment import Cell
from wagle.experiment.cells import read_result
from wagle.experiment.result import CellResult, RecordFormatError, cell_result

CELL = Cell("npo", "wagle", 0.5, 0)
UNLEARNED = SimpleNamespace(selected={"step": 4, "degenerate": False}, step_log=[{}] * 6)


def evaluation(**summary_changes) -> dict:
    """An eval.json as ``wagle evaluate`` writes it, cut down to what a record reads."""
    figures = {"forget.rouge_l_recall": 0.4, "retain.rouge_l_recall": 0.9,
               "forget.probability": 0.2, "mia.min_k_auc": 0.7}  # fmt: skip
    summary = {"forget_quality": 0.05, "model_utility": 0.6, "privleak": -40.0,
               "degeneration": {"degenerate": True}, "figures": figures}  # fmt: skip
    sections = {"forget": {}, "retain": {}, "mia": {}}
    return {"summary": summary | summary_changes, "sections": sections}


def record(evaluation_dict: dict) -> CellResult:
    return cell_result(CELL, evaluation_dict, UNLEARNED, {"unlearn": 1.234}, None, "abc")


def test_the_record_holds_the_evaluation_figures():
    r = record(evaluation())
    assert (r.cell, r.forget_quality, r.model_utility, r.privleak) == (
        "npo-wagle-r0.5-s0", 0.05, 0.6, -40.0
    )  # fmt: skip
    assert (r.forget_rouge, r.retain_rouge, r.forget_probability, r.mia_auc) == (0.4, 0.9, 0.2, 0.7)
    assert (r.degenerate, r.selected_step, r.steps, r.seconds) == (True, 4, 6, {"unlearn": 1.23})


def test_a_renamed_summary_key_fails_instead_of_recording_null():
    """The bug this record exists for: the summary key became `privleak`, the runner kept
    reading `privacy_leakage` with .get() and wrote null into every result."""
    renamed = evaluation()
    renamed["summary"]["privacy_leakage"] = renamed["summary"].pop("privleak")
    with pytest.raises(KeyError, match="privleak"):
        record(renamed)


def test_a_renamed_figure_fails_but_a_missing_section_is_none():
    renamed = evaluation()
    figures = renamed["summary"]["figures"]
    figures["forget.rouge_l"] = figures.pop("forget.rouge_l_recall")
    with pytest.raises(KeyError, match=r"forget\.rouge_l_recall"):
        record(renamed)
    no_mia = evaluation()
    del no_mia["sections"]["mia"], no_mia["summary"]["figures"]["mia.min_k_auc"]
    assert record(no_mia).mia_auc is None


def test_without_forget_answers_the_trajectory_says_whether_the_checkpoint_degenerated():
    assert record(evaluation(degeneration=None)).degenerate is False


def test_records_round_trip_and_refuse_other_keys():
    r = record(evaluation())
    assert CellResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    old = r.to_dict()
    old["privacy_leakage"] = old.pop("privleak")
    with pytest.raises(RecordFormatError, match="privacy_leakage"):
        CellResult.from_dict(old)
    assert "mask_density" not in r.to_dict(density=False)


def test_a_result_file_of_another_format_counts_as_unfinished(tmp_path):
    r = record(evaluation())
    old = r.to_dict()
    old["privacy_leakage"] = old.pop("privleak")
    (tmp_path / "result.json").write_text(json.dumps(old))
    assert read_result(tmp_path) is None
    (tmp_path / "result.json").write_text(json.dumps(r.to_dict()))
    assert read_result(tmp_path, "abc") == r and read_result(tmp_path, "other") is None


def test_the_report_warns_when_bf16_cells_trained_with_different_optimizer_precisions():
    from dataclasses import replace

    from wagle.report.write import _precision_lines

    base = record(evaluation())
    same = [replace(base, dtype="bfloat16", optimizer_state="full")] * 2
    assert _precision_lines(same)[0] == (
        "Training precision: bfloat16 weights, full optimizer state: 2 cells."
    )
    mixed = [*same, replace(base, dtype="bfloat16", optimizer_state="selected")]
    assert "Warning" in _precision_lines(mixed)[1]
    fp32 = [replace(base, optimizer_state="full"), replace(base, optimizer_state="selected")]
    assert len(_precision_lines(fp32)) == 2  # one line and a blank: fp32 either way
