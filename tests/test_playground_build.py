"""Building and caching the playground: a micro build end to end (base → fine-tunes → fidelity)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from wagle.cli import main
from wagle.evaluation.stats import ks_pvalue
from wagle.playground import PlaygroundConfig, build_playground, train

WORLD = dict(world_authors=20, world_countries=20, n_world_facts=10)
MICRO = dict(size="micro", n_authors=20, n_holdout=2, fidelity=False, jobs=1) | WORLD
FINETUNES = ["retain-forget10", "target"]


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
    for key in ("base", "target", "retain"):
        model = AutoModelForCausalLM.from_pretrained(info[key])
        tokenizer = AutoTokenizer.from_pretrained(info[key])
        assert model.config.model_type == "llama"
        assert tokenizer.pad_token_id is not None


def test_training_loss_falls(home):
    info = build_playground(PlaygroundConfig(**MICRO), progress=False)
    losses = json.loads((home / info["target"] / "training_log.json").read_text())["losses"]
    assert losses[-1] < losses[0]


def test_target_and_retain_model_are_fine_tuned_from_the_base(home):
    info = build_playground(PlaygroundConfig(**MICRO), progress=False)
    for key in ("target", "retain"):
        log = json.loads((home / info[key] / "training_log.json").read_text())
        assert log["init"] == info["base"]
    base_log = json.loads((Path(info["base"]) / "training_log.json").read_text())
    assert base_log["init"] is None


def test_each_epoch_replays_its_own_share_of_the_world():
    records, world = [{"q": i} for i in range(3)], [{"w": i} for i in range(40)]
    schedule = train._epochs(records, world, share=0.25, epochs=3, seed=0)
    epochs = [schedule[i * 13 : (i + 1) * 13] for i in range(3)]
    assert len(schedule) == 3 * (3 + 10)
    assert all(e[:3] == records for e in epochs)
    replayed = [{r["w"] for r in e[3:]} for e in epochs]
    assert all(len(r) == 10 for r in replayed) and replayed[0] != replayed[1]
    assert schedule == train._epochs(records, world, share=0.25, epochs=3, seed=0)


def test_each_fine_tuned_model_is_evaluated_as_wagle_evaluate_does(home):
    info = build_playground(PlaygroundConfig(**MICRO), progress=False)
    saved = json.loads(Path(info["reference"]).read_text())
    assert (saved["benchmark"], saved["split"]) == ("playground", "forget10")
    assert info["models"]["retain-forget10"]["forget_quality"] == 1.0  # itself
    target = json.loads((Path(info["target"]).parent / "evals/target/eval.json").read_text())
    figures = info["models"]["target"]
    assert figures["forget_rouge"] == target["sections"]["forget"]["aggregates"]["rouge_l_recall"]
    assert figures["model_utility"] == target["model_utility"]
    ratios = [e["sections"]["forget"]["per_sample"]["truth_ratio"] for e in (target, saved)]
    assert figures["forget_quality"] == ks_pvalue(*ratios)


def test_second_build_reuses_the_cache(home, monkeypatch):
    monkeypatch.setattr(train, "train_model", refuse_training)
    first = build_playground(PlaygroundConfig(**MICRO), progress=False)
    assert build_playground(PlaygroundConfig(**MICRO), progress=False) == first


def test_a_new_retain_split_joins_the_same_build(home, monkeypatch):
    calls = []
    real = train.train_model
    monkeypatch.setattr(train, "train_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    config = PlaygroundConfig(**MICRO | dict(retain_splits=["forget10", "forget05"]))
    info = build_playground(config, progress=False)
    assert len(calls) == 1  # the forget05 retain model; the base and the target are reused
    assert set(info["retain_models"]) == {"forget10", "forget05"}
    assert info == build_playground(PlaygroundConfig(**MICRO), progress=False)


def test_interrupted_build_leaves_nothing_that_looks_complete(home, monkeypatch):
    config = PlaygroundConfig(**MICRO | dict(seed=7))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train_model", crash)
    with pytest.raises(KeyboardInterrupt):
        build_playground(config, progress=False)
    assert sorted(p.name for p in config.directory().iterdir()) == ["data"]


def test_force_rebuilds(home, monkeypatch):
    calls = []
    real = train.train_model
    monkeypatch.setattr(train, "train_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    build_playground(PlaygroundConfig(**MICRO), force=True, progress=False)
    assert len(calls) == 3  # the base, the target and the retain model


def test_info_json_names_the_paths(home, capsys):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in MICRO.items() if k != "fidelity"]
    assert main(["playground", "info", "--json", "--no-fidelity", *flags]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"base", "data", "target", "retain"} <= set(info)
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


def test_another_seed_trains_in_parallel_processes_from_the_cached_base(home):
    base = PlaygroundConfig(**MICRO).base_directory() / "model" / "model.safetensors"
    before = base.stat().st_mtime_ns
    info = build_playground(PlaygroundConfig(**MICRO | dict(seed=5, jobs=2)), progress=False)
    assert base.stat().st_mtime_ns == before and info["base"] == str(base.parent)
    for key in ("target", "retain"):
        log = json.loads((home / info[key] / "training_log.json").read_text())
        assert log["init"] == info["base"] and log["losses"][-1] < log["losses"][0]
        AutoModelForCausalLM.from_pretrained(info[key])
    assert info["build_seconds"]["finetune_target"] > 0
