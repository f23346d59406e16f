"""General utility through lm-eval-harness: a local task YAML over a local data file, run on
the loaded model by ``wagle evaluate --benchmark lm-eval``; no hub."""

from __future__ import annotations

import json

import pytest
import torch

from wagle.cli import main

# A zero model (every weight 0) gives uniform next-token distributions, so the log-likelihood
# of a choice is −(its token count)·ln V and lm-eval's `acc` picks the choice with the fewest
# tokens (the first among ties). "yes" / "no" are shorter than their repetitions, so docs 1, 3
# and 4 are right and doc 2 (answer: the 3-word choice) is wrong: acc = 3/4.
DOCS = [
    {"question": "Is it?", "choices": ["yes", "yes yes yes", "yes yes yes yes yes"], "answer": 0},
    {"question": "Not?", "choices": ["yes", "yes yes yes", "yes yes yes yes yes"], "answer": 1},
    {"question": "Really?", "choices": ["no", "no no no", "no no no no"], "answer": 0},
    {"question": "Sure?", "choices": ["no", "no no no", "no no no no"], "answer": 0},
]
TASK = """\
task: wagle_tiny_mcq
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture
def zero_model_dir(tmp_path, tiny_model, tokenizer):
    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


@pytest.fixture
def task_dir(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    data = folder / "tiny.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (folder / "tiny.yaml").write_text(TASK.format(data=data))
    return folder


def test_lm_eval_accuracy_lands_in_eval_json(zero_model_dir, task_dir, tmp_path):
    out = tmp_path / "eval"
    code = main([
        "evaluate", "--model", str(zero_model_dir), "--benchmark", "lm-eval",
        "--tasks", "wagle_tiny_mcq", "--task-dir", str(task_dir), "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    result = json.loads((out / "eval.json").read_text())
    section = result["sections"]["wagle_tiny_mcq"]
    assert section["n"] == 4
    assert section["aggregates"] == {"acc": 0.75, "acc_stderr": 0.25}
    assert section["per_sample"]["acc"] == [1.0, 0.0, 1.0, 1.0]
    assert result["summary"]["figures"]["wagle_tiny_mcq.acc"] == 0.75


def _no_model_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("wagle.models.load_pretrained", refuse)


def test_missing_extra_is_one_line_before_loading(zero_model_dir, tmp_path, monkeypatch, capsys):
    _no_model_loading(monkeypatch)
    monkeypatch.setattr("wagle.extras.find_spec", lambda name: None)
    code = main([
        "evaluate", "--model", str(zero_model_dir), "--benchmark", "lm-eval",
        "--tasks", "mmlu", "--out", str(tmp_path / "eval"),
    ])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        "wagle: error: --benchmark lm-eval needs the lm_eval package: pip install 'wagle[lm-eval]'"
    )
    assert not (tmp_path / "eval").exists()


def test_lm_eval_without_tasks_is_a_user_error(zero_model_dir, tmp_path, capsys):
    code = main([
        "evaluate", "--model", str(zero_model_dir), "--benchmark", "lm-eval",
        "--out", str(tmp_path / "eval"),
    ])  # fmt: skip
    assert code == 2
    assert "needs --tasks" in capsys.readouterr().err


def test_unknown_task_is_one_line_before_loading(zero_model_dir, tmp_path, monkeypatch, capsys):
    """Checked against lm-eval's task index (replaced here by an empty one: indexing lm-eval's
    own tasks takes ~20 s on this machine)."""
    _no_model_loading(monkeypatch)

    class NoTasks:
        def __init__(self, **kwargs) -> None:
            self.all_tasks: list[str] = []

    monkeypatch.setattr("lm_eval.tasks.TaskManager", NoTasks)
    code = main([
        "evaluate", "--model", str(zero_model_dir), "--benchmark", "lm-eval",
        "--tasks", "mmlu,wmdp_bio", "--out", str(tmp_path / "e"),
    ])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "wagle: error: unknown lm-eval task(s) ['mmlu', 'wmdp_bio']; `lm-eval ls tasks` lists them"
    )
