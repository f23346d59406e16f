"""`wagle run` at 7B scale, checked on the tiny study: the recipe's dtype is honoured, the model
is trained in place and restored (no copy per cell), the gradient statistics are freed once the
masks exist, several processes are refused, and a bf16 sweep keeps one optimizer precision."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
import yaml

import wagle.experiment.masks as masks
import wagle.experiment.runner as runner
from tiny_study import RECIPE, workspace
from wagle.cli import main
from wagle.errors import WagleError
from wagle.experiment import Cell, grid, load_recipe
from wagle.experiment.precision import sweep_optimizer_state
from wagle.experiment.setup import prepare


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    return root, workspace(root)


def recipe(paths, **changes):
    values = RECIPE | {"model": str(paths["model"]), "retain_model": str(paths["retain"]),
                       "data": str(paths["data"])} | changes  # fmt: skip
    return load_recipe(None, **values)


def test_several_processes_are_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(RECIPE))
    assert main(["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wagle: error: wagle run trains its cells one after another")
    assert "\n" not in err and not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore:training bfloat16 weights directly")
def test_methods_with_different_dtypes_are_a_recipe_error():
    methods = {"npo": {"dtype": "bfloat16"}, "graddiff": {}}
    with pytest.raises(WagleError, match="all methods must use the same dtype"):
        load_recipe(None, methods=methods)


@pytest.mark.filterwarnings("ignore:training bfloat16 weights directly")
def test_the_recipe_dtype_loads_every_model(tiny):
    root, paths = tiny
    r = recipe(paths, unlearn=RECIPE["unlearn"] | {"dtype": "bfloat16"})
    setup = prepare(r, root / "bf16", say=lambda line: None)
    assert {p.dtype for p in setup.model.parameters()} == {torch.bfloat16}
    assert setup.eval_config.dtype == "bfloat16"  # the retain model's evaluation too
    reference = yaml.safe_load((root / "bf16" / "reference" / "eval.json").read_text())
    assert reference["config"]["dtype"] == "bfloat16"


def test_cells_train_the_one_model_from_its_original_weights(tiny, monkeypatch):
    """Each cell gets the loaded model itself (no copy), holding the original weights bit for
    bit, whatever the previous cell trained into it."""
    root, paths = tiny
    seen, real = [], runner.unlearn_model

    def spy(model, *args, **kwargs):
        seen.append((id(model), {n: p.detach().clone() for n, p in model.named_parameters()}))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(runner, "unlearn_model", spy)
    r = recipe(paths, methods={"npo": {}}, masks=["dense", "wagle"],
               unlearn=RECIPE["unlearn"] | {"epochs": 1})  # fmt: skip
    runner.run_experiment(r, root / "inplace", say=lambda line: None)
    from wagle.models import load_model

    original = dict(load_model(paths["model"]).named_parameters())
    assert len(seen) == 2 and seen[0][0] == seen[1][0]
    for _, weights in seen:
        assert all(torch.equal(weights[n], original[n].detach()) for n in original)


def test_statistics_are_freed_once_the_masks_exist(tiny, monkeypatch):
    """Two ratios of two score methods from one pass; afterwards nothing holds the gradient
    sums. A ratio asked for later (an automatic search) collects them again and keeps them
    until the seed is released."""
    root, paths = tiny
    alive, collect = [], masks.collect_statistics

    def tracked(*args, **kwargs):
        stats = collect(*args, **kwargs)
        alive.append(weakref.ref(stats.forget_grad["model.norm.weight"]))
        return stats

    monkeypatch.setattr(masks, "collect_statistics", tracked)
    setup = prepare(recipe(paths, masks=["wagle", "magnitude"]), root / "free", say=print)
    bank = masks.MaskBank(setup)
    bank.prepare(0, {("wagle", 0.5), ("wagle", 0.2), ("magnitude", 0.5)})
    gc.collect()
    assert len(alive) == 1 and alive[0]() is None
    mask, info, _ = bank.get(0, "wagle", 0.2)
    assert info["mask"]["ratio"] == 0.2 and mask["model.norm.weight"].dtype == torch.bool
    bank.get(0, "wagle", 0.35)  # not prepared: collected now, kept for the search
    gc.collect()
    assert len(alive) == 2 and alive[1]() is not None
    bank.release(0)
    gc.collect()
    assert alive[1]() is None and not bank.masks


def test_a_bf16_sweep_resolves_auto_once_for_the_experiment():
    """auto picks selective state below half the weights, per run: ρ 0.2 selective with fp32
    masters, ρ 0.8 dense bf16 moments. Across a bf16 sweep it is resolved once, by the densest
    cell; fp32 weights keep auto per cell (both states are fp32 there)."""

    def state(ratios, masks=("wagle",), dtype="bfloat16"):
        r = load_recipe(None, masks=list(masks), ratios=ratios)
        return sweep_optimizer_state(grid(r), r, dtype)

    assert state([0.2, 0.8]) == "full"
    assert state([0.1, 0.2, 0.4]) == "selected"
    assert state([0.2], masks=("dense", "wagle")) == "full"
    assert state([0.2], masks=("lora", "wagle")) == "selected"  # LoRA trains fp32 adapters
    assert state(["auto"]) == "full"  # the search probes up to ρ 0.95
    assert state([0.2, 0.8], dtype="float32") is None


@pytest.mark.filterwarnings("ignore:training bfloat16 weights directly")
def test_a_bf16_sweep_trains_and_records_one_optimizer_state(tiny):
    root, paths = tiny
    r = recipe(paths, methods={"npo": {}}, masks=["wagle"], ratios=[0.2, 0.8],
               unlearn=RECIPE["unlearn"] | {"dtype": "bfloat16", "epochs": 1})  # fmt: skip
    runner.run_experiment(r, root / "sweep", say=lambda line: None)
    records = [
        yaml.safe_load((root / "sweep" / "cells" / c.id / "result.json").read_text())
        for c in (Cell("npo", "wagle", 0.2, 0), Cell("npo", "wagle", 0.8, 0))
    ]
    assert [(x["dtype"], x["optimizer_state"]) for x in records] == [("bfloat16", "full")] * 2


def test_restore_gives_back_the_original_weights_and_turns_checkpointing_off(tiny):
    """What a cell leaves behind (changed weights, frozen parameters, activation checkpointing
    switched on by the Trainer) is undone before the next one."""
    root, paths = tiny
    setup = prepare(recipe(paths), root / "free", say=lambda line: None)  # evaluations cached
    original = {n: p.detach().clone() for n, p in setup.model.named_parameters()}
    with torch.no_grad():
        for p in setup.model.parameters():
            p.add_(1.0)
    setup.model.model.embed_tokens.weight.requires_grad_(False)
    setup.model.activation_checkpointing_enable()
    setup.restore()
    assert not setup.model.is_activation_checkpointing
    for name, p in setup.model.named_parameters():
        assert torch.equal(p, original[name]) and p.requires_grad
