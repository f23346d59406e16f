"""`wagle run` end to end on a micro recipe: cells, resume after an interruption, the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import wagle.experiment.runner as runner
from wagle.cli import main
from wagle.data.playground import write
from wagle.experiment import load_recipe
from wagle.report import write_report

RECIPE = str(Path(__file__).parent.parent / "configs" / "experiment_micro.yaml")
CELLS = ["graddiff-dense-s0", "graddiff-wagle-r0.5-s0", "npo-dense-s0", "npo-wagle-r0.5-s0"]
FIRST = "npo-dense-s0"  # the grid runs seed, then method, then mask in recipe order


def _save_tiny_model(directory, tokenizer, seed: int) -> None:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


@pytest.fixture(scope="module")
def interrupted_then_resumed(tmp_path_factory, tokenizer, micro_splits):
    """Run the micro recipe, interrupted as its second cell starts; then run it again.

    Returns (experiment dir, first cell's result.json text and mtime after the interrupted
    run, cells unlearned by the second run, statistics passes of the second run)."""
    root = tmp_path_factory.mktemp("experiment")
    write(micro_splits, root / "data")
    _save_tiny_model(root / "model", tokenizer, seed=0)
    _save_tiny_model(root / "retain", tokenizer, seed=1)
    out = root / "run"
    argv = ["run", RECIPE, "--out", str(out), "--model", str(root / "model"),
            "--retain-model", str(root / "retain"), "--data", str(root / "data")]  # fmt: skip
    real, unlearned = runner.unlearn_model, []

    def interrupt_second_cell(*args, **kwargs):
        if len(unlearned) == 1:
            raise KeyboardInterrupt
        unlearned.append(kwargs["out"].name)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "unlearn_model", interrupt_second_cell)
        assert main(argv) == 130  # the CLI's exit code for an interruption
    first = out / "cells" / FIRST / "result.json"
    before = (first.read_text(), first.stat().st_mtime_ns)

    unlearned.clear()
    passes, collect = [], runner.collect_statistics

    def count(*args, **kwargs):
        unlearned.append(kwargs["out"].name)
        return real(*args, **kwargs)

    def count_passes(*args, **kwargs):
        passes.append(args[4])  # the statistics asked for
        return collect(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "unlearn_model", count)
        patch.setattr(runner, "collect_statistics", count_passes)
        assert main(argv) == 0
    return out, before, list(unlearned), passes


def test_interrupted_run_resumes_without_recomputing_the_finished_cell(interrupted_then_resumed):
    out, (text, mtime), unlearned, _ = interrupted_then_resumed
    first = out / "cells" / FIRST / "result.json"
    assert (first.read_text(), first.stat().st_mtime_ns) == (text, mtime)
    assert sorted(unlearned) == sorted(set(CELLS) - {FIRST})


def test_every_cell_writes_its_directory_and_a_results_record(interrupted_then_resumed):
    out, *_ = interrupted_then_resumed
    for cell in CELLS:
        assert {"config.json", "eval.json", "result.json"} <= {
            p.name for p in (out / "cells" / cell).iterdir()
        }
    records = json.loads((out / "results.json").read_text())
    assert sorted(r["cell"] for r in records) == CELLS
    for record in records:
        assert {"method", "mask", "ratio", "seed", "forget_quality", "model_utility"} <= set(record)
        assert 0 <= record["forget_quality"] <= 1
    wagle = next(r for r in records if r["cell"] == "npo-wagle-r0.5-s0")
    assert (wagle["method"], wagle["mask"], wagle["ratio"], wagle["seed"]) == (
        "npo",
        "wagle",
        0.5,
        0,
    )


def test_cell_config_records_the_mask_it_selected(interrupted_then_resumed):
    out, *_ = interrupted_then_resumed
    config = json.loads((out / "cells" / "npo-wagle-r0.5-s0" / "config.json").read_text())
    assert config["mask"]["method"] == "wagle" and config["mask"]["ratio"] == 0.5
    assert config["unlearn"]["method"] == "npo" and config["unlearn"]["seed"] == 0
    dense = json.loads((out / "cells" / "npo-dense-s0" / "config.json").read_text())
    assert dense["mask"] == {"method": "dense", "ratio": 1.0}


def test_report_is_rebuilt_from_saved_results_alone(interrupted_then_resumed, tmp_path):
    """A copy of the directory without models or the recipe file: every cell is reported."""
    out, *_ = interrupted_then_resumed
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("report.md", "*.png", "results.json"))
    report = write_report(copy)
    text = report.path.read_text()
    for cell in CELLS:
        assert cell in text
    assert "| npo | wagle | 0.5 | 1 |" in text
    assert {"pareto.png", "ratio.png", "trajectories.png", "mask_density.png"} <= {
        p.name for p in copy.iterdir()
    }
    assert len(json.loads((copy / "results.json").read_text())) == len(CELLS)


def test_changed_recipe_recomputes_only_the_changed_cells(
    interrupted_then_resumed, monkeypatch, tmp_path
):
    """A cell is reused only if everything it depends on is unchanged (its config hash)."""
    out = tmp_path / "copy"
    shutil.copytree(interrupted_then_resumed[0], out)
    recipe = json.loads((out / "recipe.json").read_text())
    changed = load_recipe(RECIPE, model=recipe["model"], retain_model=recipe["retain_model"],
                          data=recipe["data"], masks=["dense"],
                          methods={"npo": {}, "graddiff": {"learning_rate": 3e-3}})  # fmt: skip
    unlearned = []
    monkeypatch.setattr(
        runner, "unlearn_model", lambda *a, **k: unlearned.append(k["out"].name) or 1 / 0
    )
    with pytest.raises(ZeroDivisionError):
        runner.run_experiment(changed, out, say=lambda line: None)
    assert unlearned == ["graddiff-dense-s0"]  # npo-dense-s0 was read, not recomputed


def test_attribution_statistics_are_collected_once_per_seed(interrupted_then_resumed):
    """The resumed run selected two WAGLE masks (npo and graddiff) from one gradient pass."""
    *_, passes = interrupted_then_resumed
    assert len(passes) == 1
    assert passes[0] == {"forget_grad", "retain_grad"}
