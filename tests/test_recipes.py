"""Every recipe in configs/ builds its config; the real-model recipes state a global batch, keep
fp32 master weights (with bf16 autocast, or bf16 weights with the selected entries' fp32
masters: 70B under FSDP2), and name their prompt format."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from wagle import config as cfg
from wagle.attribution import AttributionConfig
from wagle.unlearning import UnlearnConfig, method_options
from wagle.unlearning.config import split_recipe

CONFIGS = Path(__file__).parent.parent / "configs"
UNLEARN = sorted(
    p
    for p in CONFIGS.glob("*.yaml")
    if not p.name.startswith(("attribute_", "experiment_", "accelerate_"))  # accelerate's own
)
REAL = [p for p in UNLEARN if not p.name.startswith("playground_")]


@pytest.mark.parametrize("path", UNLEARN, ids=lambda p: p.stem)
def test_unlearning_recipes_build_without_a_precision_warning(path):
    run, options = split_recipe(cfg.load_yaml(path))
    required = {"model": "m", "forget": "f", "retain": "r"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        config = cfg.build(UnlearnConfig, required | run | {"out": "o"})
    method_options(config.method, options)
    assert config.global_batch_size > 0
    # fp32 weights, or bf16 ones (70B under FSDP2) with fp32 masters of the selected entries
    assert config.dtype == "float32" or (config.dtype, config.optimizer_state) == (
        "bfloat16",
        "selected",
    )


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_model_recipes_use_mixed_precision(path):
    run, _ = split_recipe(cfg.load_yaml(path))
    assert run.get("bf16") is True or run.get("dtype") == "bfloat16"
    assert run["gradient_checkpointing"] is True


def test_tofu_recipes_share_the_prompt_format_with_attribution():
    formats = {cfg.load_yaml(p).get("prompt_format") for p in CONFIGS.glob("*tofu*.yaml")}
    assert formats == {"tofu-llama2"}
    for path in CONFIGS.glob("attribute_*.yaml"):
        cfg.build(AttributionConfig, cfg.load_yaml(path))


MEMORY = re.compile(
    r"Memory \(wagle plan --model (?P<model>\S+) --config (?P<config>\S+) --ratio (?P<ratio>\S+)(?: --fsdp (?P<fsdp>\d+))?\):"
    r" (?P<step>[\d.]+) GiB a step(?:, (?P<point>[\d.]+) GiB a trajectory point)?:"
    r" fits one (?P<gpu>\d+) GB GPU"
)


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_every_7b_recipe_fits_the_gpu_its_comment_names(path):
    """The recipe's comment states ``wagle plan``'s figures for it (a step, and a trajectory
    point for the QA recipes; per GPU under ``--fsdp N``) and a GPU: the figures are the plan's,
    and the larger fits the GPU with 5% to spare (CUDA context, fragmentation)."""
    from wagle.plan import GiB, load_shape, recipe_memory

    comment = " ".join(
        line.lstrip("# ") for line in path.read_text().splitlines() if line.startswith("#")
    )
    stated = MEMORY.search(comment)
    assert stated, f"{path.name} names no GPU with the plan's figures"
    assert stated["config"] == f"configs/{path.name}"
    run, options = split_recipe(cfg.load_yaml(path))
    config = cfg.build(UnlearnConfig, run)
    plan = recipe_memory(
        load_shape(stated["model"]), config, method_options(config.method, options),
        float(stated["ratio"]), fsdp=int(stated["fsdp"] or 0),
    )  # fmt: skip
    peak = sum(plan["step"].values())
    assert f"{peak / GiB:.1f}" == stated["step"]
    if stated["point"] is not None:
        point = sum(plan["evaluation"].values())
        assert f"{point / GiB:.1f}" == stated["point"]
        peak = max(peak, point)
    assert peak <= 0.95 * int(stated["gpu"]) * 1e9
