"""Building and caching the playground: a micro build end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from wagle.cli import main
from wagle.playground import PlaygroundConfig, build_playground, train

MICRO = dict(size="micro", n_authors=20, n_holdout=2, n_world_facts=10, jobs=1)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A private WAGLE_HOME with one finished micro build."""
    path = tmp_path_factory.mktemp("wagle_home")
    old = os.environ.get("WAGLE_HOME")
    os.environ["WAGLE_HOME"] = str(path)
    build_playground(PlaygroundConfig(**MICRO), progress=False)
    yield path
    if old is None:
        del os.environ["WAGLE_HOME"]
    else:
        os.environ["WAGLE_HOME"] = old


def refuse_training(*args, **kwargs):
    raise AssertionError("the cached build retrained a model")


def test_models_load_offline_with_from_pretrained(home):
    info = build_playground(PlaygroundConfig(**MICRO), progress=False)
    for key in ("target", "retain"):
        model = AutoModelForCausalLM.from_pretrained(info[key])
        tokenizer = AutoTokenizer.from_pretrained(info[key])
        assert model.config.model_type == "llama"
        assert tokenizer.pad_token_id is not None


def test_training_loss_falls(home):
    info = build_playground(PlaygroundConfig(**MICRO), progress=False)
    losses = json.loads((home / info["target"] / "training_log.json").read_text())["losses"]
    assert losses[-1] < losses[0]


def test_info_records_recall_of_both_models(home):
    info = build_playground(PlaygroundConfig(**MICRO), progress=False)
    for model in ("target", "retain-forget10"):
        figures = info["rouge_l_recall"][model]
        assert set(figures) == {"forget10", "retain90"}
        assert all(0.0 <= value <= 1.0 for value in figures.values())


def test_second_build_reuses_the_cache(home, monkeypatch):
    monkeypatch.setattr(train, "train_model", refuse_training)
    first = build_playground(PlaygroundConfig(**MICRO), progress=False)
    assert build_playground(PlaygroundConfig(**MICRO), progress=False) == first


def test_interrupted_build_leaves_nothing_that_looks_complete(home, monkeypatch):
    config = PlaygroundConfig(**MICRO | dict(seed=7))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train_model", crash)
    with pytest.raises(KeyboardInterrupt):
        build_playground(config, progress=False)
    root = config.directory()
    assert sorted(p.name for p in root.iterdir()) == ["data", "tokenizer"]


def test_force_rebuilds(home, monkeypatch):
    calls = []
    real = train.train_model
    monkeypatch.setattr(train, "train_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    build_playground(PlaygroundConfig(**MICRO), force=True, progress=False)
    assert len(calls) == 2  # target and retain model


def test_info_json_names_the_paths(home, capsys):
    flags = ["--size", "micro", "--n-authors", "20", "--n-holdout", "2", "--n-world-facts", "10"]
    assert main(["playground", "info", "--json", *flags]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"data", "target", "retain"} <= set(info)
    assert (home / info["data"] / "forget10.jsonl").is_file()


def test_info_without_a_build_is_a_one_line_error(home, capsys):
    assert main(["playground", "info", "--seed", "99"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wagle: error: no playground built") and "\n" not in err


@pytest.mark.parametrize(
    "flags",
    [
        ["--size", "huge"],
        ["--n-authors", "-3"],
        ["--retain-splits", "forget50"],
        ["--epochs", "-1"],
    ],
)
def test_bad_build_options_are_one_line_errors(flags, capsys):
    assert main(["playground", "build", "--quiet", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wagle: error:") and "\n" not in err


def test_unwritable_cache_directory_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("WAGLE_HOME", str(blocker / "home"))
    assert main(["playground", "build", "--quiet", "--size", "micro"]) == 2
    assert "cannot create directory" in capsys.readouterr().err


def test_python_dash_m_is_the_same_cli():
    result = subprocess.run(
        [sys.executable, "-m", "wagle", "playground", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "build" in result.stdout


def test_models_train_in_parallel_processes(home):
    info = build_playground(PlaygroundConfig(**MICRO | dict(seed=5, jobs=2)), progress=False)
    for key in ("target", "retain"):
        log = json.loads((home / info[key] / "training_log.json").read_text())
        assert log["losses"][-1] < log["losses"][0]
        AutoModelForCausalLM.from_pretrained(info[key])
    assert info["build_seconds"]["train_target"] > 0
