"""``wagle unlearn`` end to end, in process, on a tiny model saved to disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from wagle import config as cfg
from wagle.attribution.masks import load_mask, save_mask
from wagle.cli import main
from wagle.io import fingerprint
from wagle.unlearning import UnlearnConfig, method_options
from wagle.unlearning.config import split_recipe


@pytest.fixture
def workspace(tmp_path, saved_inputs):
    """A saved tiny model, forget/retain JSONL files and a mask selecting half the weights."""
    model = saved_inputs(n_retain=16)
    generator = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(p.shape, generator=generator) < 0.5 for n, p in model.named_parameters()}
    save_mask(mask, tmp_path / "mask.safetensors", {"score": "random", "ratio": 0.5})
    return tmp_path


def _args(ws, *extra: str) -> list[str]:
    return [
        "unlearn", "--model", str(ws / "model"), "--forget", str(ws / "forget.jsonl"),
        "--retain", str(ws / "retain.jsonl"), "--out", str(ws / "out"), "--max-steps", "2",
        "--batch-size", "2", "--gradient-accumulation-steps", "2", "--learning-rate", "1e-2",
        "--max-length", "48", "--no-progress", *extra,
    ]  # fmt: skip


def test_run_writes_model_tokenizer_config_and_log(workspace):
    code = main(_args(workspace, "--method", "npo", "--mask", str(workspace / "mask.safetensors")))
    assert code == 0
    out = workspace / "out"
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    run = json.loads((out / "run_config.json").read_text())
    assert run["run"]["method"] == "npo" and run["method_options"]["beta"] == 0.1
    assert run["mask"]["fingerprint"] == fingerprint(workspace / "mask.safetensors")
    assert run["mask"]["metadata"]["score"] == "random"
    steps = json.loads((out / "training_log.json").read_text())["steps"]
    assert [s["step"] for s in steps] == [1, 2]
    assert {"loss", "forget", "retain", "forget_nll", "retain_nll", "lr"} <= set(steps[0])


def test_saved_model_keeps_unselected_weights(workspace):
    assert (
        main(
            _args(workspace, "--method", "graddiff", "--mask", str(workspace / "mask.safetensors"))
        )
        == 0
    )
    original = AutoModelForCausalLM.from_pretrained(workspace / "model")
    unlearned = AutoModelForCausalLM.from_pretrained(workspace / "out")
    mask = load_mask(workspace / "mask.safetensors")
    after = dict(unlearned.named_parameters())
    for name, before in original.named_parameters():
        outside = ~mask[name]
        assert torch.equal(before.detach()[outside], after[name].detach()[outside]), name
    assert not torch.equal(
        original.model.layers[0].mlp.up_proj.weight, after["model.layers.0.mlp.up_proj.weight"]
    )


def test_recipe_sets_options_and_flags_override_it(workspace):
    recipe = workspace / "recipe.yaml"
    recipe.write_text("method: simnpo\nbeta: 3.0\ndelta: 0.5\nlearning_rate: 0.5\n")
    assert main(_args(workspace, "--config", str(recipe), "--delta", "0.25")) == 0
    run = json.loads((workspace / "out" / "run_config.json").read_text())
    assert run["method_options"] == {
        "retain_weight": 1.0,
        "retain_loss": "nll",
        "beta": 3.0,
        "delta": 0.25,
    }
    assert run["run"]["learning_rate"] == 0.01  # the flag wins over the recipe


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "dpo"], "unknown unlearning method 'dpo'"),
        (["--method", "ga", "--beta", "0.5"], "do not apply to method 'ga'"),
        (["--optimizer", "adafactor"], "not supported"),
        (["--mask", "missing.safetensors"], "mask file not found"),
        (["--eval-reference", "missing.json"], "reference evaluation not found"),
        (["--eval-benchmark", "mcq"], "eval_benchmark must be a QA benchmark"),
        (["--eval-benchmark", "mmlu"], "unknown benchmark 'mmlu'"),
        (["--utility-floor", "1.5"], "utility_floor must be in [0, 1]"),
    ],
)
def test_user_errors_print_one_line(workspace, capsys, extra, message):
    assert main(_args(workspace, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (workspace / "out").exists()


def test_missing_required_option_is_a_user_error(capsys):
    assert main(["unlearn", "--method", "ga"]) == 2
    assert "--model is required" in capsys.readouterr().err


@pytest.mark.parametrize(
    "recipe",
    ["tofu_npo", "tofu_graddiff", "tofu_po", "wmdp_rmu", "muse_npo", "playground_npo",
     "playground_graddiff"],
)  # fmt: skip
def test_shipped_recipes_are_valid(recipe):
    path = Path(__file__).parents[1] / "configs" / f"{recipe}.yaml"
    run, options = split_recipe(cfg.load_yaml(path))
    config = cfg.build(UnlearnConfig, {"model": "m", "forget": "f", "retain": "r", "out": "o"}, run)
    method_options(config.method, options)
