"""Precision, gradient checkpointing and what runs on several processes.

At lr 1e-5 an AdamW step moves a weight by about 1e-5. bf16 keeps 8 significant bits, so a
bf16 weight w only moves when 1e-5 exceeds half its spacing, |w|·2⁻⁹ or more: for the tiny
model's N(0, 0.02²) weights that is |w| < ~5e-3, about 20% of them. fp32 weights (the default,
with or without bf16 autocast) keep every update.
"""

from __future__ import annotations

import pytest
import torch

from wagle.attribution.masks import save_mask
from wagle.cli import main
from wagle.data.playground import write
from wagle.errors import WagleError
from wagle.evaluation import suite
from wagle.unlearning import UnlearnConfig, unlearn
from wagle.unlearning.devices import accumulation_steps

LINEAR = "model.layers.0.mlp.gate_proj.weight"


def _run(tmp_path, saved_inputs, out="out", **overrides):
    """Unlearn 2 steps at lr 1e-5 under a random half mask; (before, after, mask) of LINEAR."""
    model = saved_inputs()
    generator = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(p.shape, generator=generator) < 0.5 for n, p in model.named_parameters()}
    save_mask(mask, tmp_path / "mask.safetensors")
    options = dict(
        model=str(tmp_path / "model"), forget=str(tmp_path / "forget.jsonl"),
        retain=str(tmp_path / "retain.jsonl"), out=str(tmp_path / out), method="graddiff",
        mask=str(tmp_path / "mask.safetensors"), learning_rate=1e-5, max_steps=2, warmup=0,
        batch_size=4, gradient_accumulation_steps=1, max_length=48, progress=False,
    ) | overrides  # fmt: skip
    result = unlearn(UnlearnConfig(**options))
    after = dict(result.model.named_parameters())[LINEAR].detach().float()
    before = dict(model.named_parameters())[LINEAR].detach()
    return before, after, mask[LINEAR]


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "fp32+bf16-autocast"])
def test_default_precision_moves_selected_weights_at_lr_1e5(tmp_path, saved_inputs, bf16):
    before, after, selected = _run(tmp_path, saved_inputs, bf16=bf16)
    changed = after != before
    assert changed[selected].float().mean() > 0.99
    assert torch.equal(after[~selected], before[~selected])


def test_pure_bf16_loses_most_updates_and_warns(tmp_path, saved_inputs):
    with pytest.warns(UserWarning, match="resolution"):
        before, after, selected = _run(tmp_path, saved_inputs, dtype="bfloat16")
    moved = (after != before.bfloat16().float())[selected].float().mean()
    assert moved < 0.5  # ~20%: only weights with |w| < ~5e-3 move
    assert torch.equal(after[~selected], before.bfloat16().float()[~selected])


def test_gradient_checkpointing_gives_the_same_weights(tmp_path, saved_inputs):
    _, plain, _ = _run(tmp_path, saved_inputs, "a", learning_rate=1e-3)
    _, checkpointed, _ = _run(tmp_path, saved_inputs, "b", learning_rate=1e-3,
                              gradient_checkpointing=True)  # fmt: skip
    torch.testing.assert_close(checkpointed, plain, rtol=0, atol=1e-7)


def test_global_batch_sets_accumulation_for_the_world_size():
    """32 forget samples per step at 4 per device: 8 micro-batches on 1 process, 1 on 8."""
    assert accumulation_steps(4, 8, 32, 1) == 8
    assert accumulation_steps(4, 8, 32, 8) == 1
    assert accumulation_steps(4, 8, 0, 8) == 8  # no global batch: the per-process setting
    with pytest.raises(WagleError, match="not a multiple"):
        accumulation_steps(4, 8, 32, 3)


def test_sharded_training_is_refused_before_loading(monkeypatch, tmp_path):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    config = UnlearnConfig(model=str(tmp_path / "missing"), forget="f.jsonl", retain="r.jsonl",
                           out=str(tmp_path / "out"))  # fmt: skip
    with pytest.raises(WagleError, match="FSDP1 is not supported"):  # FSDP2 needs fsdp_version 2
        unlearn(config)


def test_evaluate_loads_the_model_in_dtype_and_runs_on_one_process(
    monkeypatch, tmp_path, saved_inputs, micro_splits, capsys
):
    saved_inputs()
    write(micro_splits, tmp_path / "data")
    seen = []
    original = suite.evaluate
    monkeypatch.setattr(
        suite,
        "evaluate",
        lambda model, *a, **k: seen.append(model.dtype) or original(model, *a, **k),
    )
    argv = ["evaluate", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data"),
            "--max-new-tokens", "2", "--dtype", "bfloat16"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "ev")]) == 0
    assert seen == [torch.bfloat16]
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*argv, "--out", str(tmp_path / "ev2")]) == 2
    assert "runs on one process" in capsys.readouterr().err


def test_bf16_weights_with_selected_state_keep_fp32_masters(tmp_path, saved_inputs):
    """optimizer_state 'selected' holds fp32 masters of the selected bf16 weights: 20 steps of
    ~1e-5 accumulate there and reach the bf16 weights, where plain bf16 AdamW drops them."""
    kept = _run(tmp_path, saved_inputs, "kept", dtype="bfloat16", optimizer_state="selected",
                max_steps=20)  # fmt: skip
    with pytest.warns(UserWarning, match="resolution"):
        lost = _run(tmp_path, saved_inputs, "lost", dtype="bfloat16", optimizer_state="full",
                    max_steps=20)  # fmt: skip
    moved = {}
    for name, (before, after, selected) in (("kept", kept), ("lost", lost)):
        start = before.bfloat16().float()
        moved[name] = float((after != start)[selected].float().mean())
        assert torch.equal(after[~selected], start[~selected])
    assert moved["kept"] > 0.6 > 0.3 > moved["lost"]  # measured: 0.76 and 0.17
