"""Resume after a crash: a killed ``wagle unlearn`` continued with ``--resume`` ends with the
same weights, step log and trajectory as an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wagle import config as cfg
from wagle.attribution.masks import save_mask
from wagle.cli import main
from wagle.unlearning import (
    PairCollator,
    PairedDataset,
    UnlearnConfig,
    method_options,
    unlearn_model,
)
from wagle.unlearning.checkpoints import STATE_FILE, checkpoint_root, resumable
from wagle.unlearning.lora import add_lora
from wagle.unlearning.objective import METHODS
from wagle.unlearning.run import _encode, training_arguments
from wagle.unlearning.trainer import MaskedUnlearningTrainer
from wagle.unlearning.trajectory import POINT_KEYS, TrajectoryCallback

# The child process: `wagle unlearn` that pauses for 3 s after saving checkpoint $PAUSE_AT
# (nothing else is changed), so that the test kills it there and not at a later one. SIGINT
# gets Python's handler back: a shell ignores it in the jobs it starts in the background, and
# the child would inherit that and never be interrupted.
CHILD = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from wagle.unlearning.trainer import MaskedUnlearningTrainer
save = MaskedUnlearningTrainer.save_state
def pausing(self, checkpoint):
    save(self, checkpoint)
    if checkpoint.name == "checkpoint-" + os.environ["PAUSE_AT"]:
        time.sleep(3)
MaskedUnlearningTrainer.save_state = pausing
from wagle.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def workspace(tmp_path, saved_inputs):
    """A saved tiny model, forget (8) / retain (16) files, a mask selecting ~30% (so that
    AdamW keeps selective state)."""
    model = saved_inputs(n_retain=16)
    generator = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(p.shape, generator=generator) < 0.3 for n, p in model.named_parameters()}
    save_mask(mask, tmp_path / "mask.safetensors", {"score": "random", "ratio": 0.3})
    return tmp_path


def _args(ws: Path, out: str, *extra: str) -> list[str]:
    # 8 forget samples, 2 × 2 per step: 2 steps per epoch, 6 steps = 3 epochs
    return [
        "unlearn", "--model", str(ws / "model"), "--forget", str(ws / "forget.jsonl"),
        "--retain", str(ws / "retain.jsonl"), "--out", str(ws / out), "--method", "npo",
        "--mask", str(ws / "mask.safetensors"), "--max-steps", "6", "--batch-size", "2",
        "--gradient-accumulation-steps", "2", "--learning-rate", "1e-2", "--max-length", "48",
        "--save-every", "1", "--no-progress", *extra,
    ]  # fmt: skip


def _start(args: list[str], pause_at: int) -> subprocess.Popen:
    env = os.environ | {"OMP_NUM_THREADS": str(torch.get_num_threads()), "PAUSE_AT": str(pause_at)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for_checkpoint(process: subprocess.Popen, out: Path, step: int) -> None:
    marker = checkpoint_root(out) / f"checkpoint-{step}" / STATE_FILE
    deadline = time.monotonic() + 120
    while not marker.is_file():
        if process.poll() is not None:
            pytest.fail(f"the run ended before checkpoint {step}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("no checkpoint within 120 s")
        time.sleep(0.02)


def _same_run(ws: Path, resumed: str, reference: str) -> None:
    a, b = ws / resumed, ws / reference
    weights_a, weights_b = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name  # bit for bit
    log = json.loads((a / "training_log.json").read_text())["steps"]
    assert log == json.loads((b / "training_log.json").read_text())["steps"]
    assert [s["step"] for s in log] == [1, 2, 3, 4, 5, 6]
    assert not checkpoint_root(a).exists()  # deleted once the run completed
    if (a / "trajectory.json").exists():
        points = [json.loads((d / "trajectory.json").read_text())["points"] for d in (a, b)]
        assert _figures(points[0]) == _figures(points[1])


def test_a_run_interrupted_twice_resumes_to_the_same_weights(workspace, capsys, monkeypatch):
    """SIGINT after checkpoint 3 (mid-epoch 1); resumed and SIGKILLed after checkpoint 5
    (mid-epoch 2); resumed again: the weights are bit-for-bit those of an uninterrupted run."""
    out = workspace / "out"
    child = _start(_args(workspace, "out"), pause_at=3)
    _wait_for_checkpoint(child, out, 3)
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=60) != 0
    child = _start(_args(workspace, "out", "--resume"), pause_at=5)
    _wait_for_checkpoint(child, out, 5)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) != 0
    assert not (out / "run_config.json").exists()  # unfinished
    kept = sorted(p.name for p in checkpoint_root(out).iterdir())
    assert kept == ["checkpoint-4", "checkpoint-5"]  # the last two
    files = {p.name for p in (checkpoint_root(out) / "checkpoint-5").iterdir()}
    assert {"model.safetensors", STATE_FILE, "trainer_state.json"} <= files
    assert not any(name.endswith(".bin") and "model" in name for name in files)

    assert main(_args(workspace, "out")) == 2
    err = capsys.readouterr().err
    assert "holds checkpoints of an unfinished run" in err and err.count("\n") == 1
    assert main(_args(workspace, "out", "--resume", "--learning-rate", "1e-3")) == 2
    assert "checkpoint was made with learning_rate=0.01" in capsys.readouterr().err
    micro_batches = []
    step = MaskedUnlearningTrainer.training_step
    monkeypatch.setattr(
        MaskedUnlearningTrainer,
        "training_step",
        lambda self, *a, **k: micro_batches.append(1) or step(self, *a, **k),
    )
    assert main(_args(workspace, "out", "--resume")) == 0
    assert len(micro_batches) == 2  # step 6 only: it went on from checkpoint 5
    assert main(_args(workspace, "reference")) == 0  # uninterrupted, same process as the resume
    assert len(micro_batches) == 2 + 12
    _same_run(workspace, "out", "reference")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--resume"], "--resume: no checkpoint in "),
        (["--resume", "--overwrite"], "--resume continues a run and --overwrite starts it again"),
        (["--resume", "--save-every", "0"], "--resume needs --save-every > 0"),
        (["--save-every", "-1"], "eval_every, early_stop and save_every must be ≥ 0"),
    ],
)
def test_resume_user_errors(workspace, capsys, extra, message):
    assert main(_args(workspace, "out", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


# --- the trajectory and step log come back with the checkpoint ----------------------------


class WeightEvaluator:
    """A point's figures from the weights themselves (forget_prob = a weight sum)."""

    def __call__(self, model):
        total = float(sum(p.detach().double().sum() for p in model.parameters()))
        return {k: None for k in POINT_KEYS[3:]} | {
            "forget_prob": total, "model_utility": 1.0, "degenerate": False,
        }  # fmt: skip


class Crash(Exception):
    pass


def _train(
    tiny_model, tokenizer, micro_splits, out: Path, crash_at=0, resume=None, lora=False,
    max_steps=5, save_every=2, schedule=None,
):  # fmt: skip
    """GradDiff on 8 forget samples, batch 2 (4 steps an epoch); a point every step unless
    ``schedule`` (TrajectoryCallback's every / epochs) says otherwise."""
    model = tiny_model(seed=0)
    if lora:  # peft adapters: the checkpoint holds the adapter weights
        torch.manual_seed(0)
        model = add_lora(model, ["q_proj", "v_proj"], rank=2, alpha=4.0)
    config = UnlearnConfig(method="graddiff", max_steps=max_steps, batch_size=2,
                           save_every=save_every,
                           gradient_accumulation_steps=1, learning_rate=1e-2, max_length=48,
                           progress=False)  # fmt: skip
    forget, retain = micro_splits["forget10"][:8], micro_splits["retain90"][:8]
    data = PairedDataset(_encode(tokenizer, forget, config), _encode(tokenizer, retain, config))
    objective = METHODS["graddiff"](None)
    schedule = schedule or {"every": 1}
    trajectory = TrajectoryCallback(WeightEvaluator(), **schedule, log=lambda line: None)
    trainer = MaskedUnlearningTrainer(
        model=model,
        args=training_arguments(config, str(out)),
        train_dataset=data,
        data_collator=PairCollator(tokenizer.pad_token_id),
        objective=objective,
        trajectory=trajectory,
    )

    def on_step_end(args, state, control, **kwargs):
        if state.global_step == crash_at:
            raise Crash

    if crash_at:
        trainer.callback_handler.callbacks[-1].on_step_end = on_step_end  # after the save
    objective.prepare(model, data, tokenizer.pad_token_id)
    trainer.train(resume_from_checkpoint=resume)
    return model, trainer


def _figures(points: list[dict]) -> list[dict]:
    return [{k: v for k, v in p.items() if k != "eval_seconds"} for p in points]


@pytest.mark.parametrize("lora", [False, True])
def test_points_best_weights_and_log_are_restored(
    tiny_model, tokenizer, micro_splits, tmp_path, lora
):
    with pytest.raises(Crash):
        _train(tiny_model, tokenizer, micro_splits, tmp_path / "a", crash_at=3, lora=lora)
    checkpoint = tmp_path / "a" / "checkpoint-2"
    saved = json.loads((checkpoint / STATE_FILE).read_text())
    assert [p["step"] for p in saved["points"]] == [0, 1, 2]
    assert [s["step"] for s in saved["step_log"]] == [1, 2]
    assert (checkpoint / "wagle_best.safetensors").is_file()  # lowest forget_prob so far

    model, trainer = _train(
        tiny_model, tokenizer, micro_splits, tmp_path / "a", resume=checkpoint, lora=lora
    )
    reference, uninterrupted = _train(
        tiny_model, tokenizer, micro_splits, tmp_path / "b", lora=lora
    )
    assert _figures(trainer.trajectory.points) == _figures(uninterrupted.trajectory.points)
    assert [p["step"] for p in trainer.trajectory.points] == [0, 1, 2, 3, 4, 5]  # 0 once
    assert trainer.trajectory.selected["step"] == uninterrupted.trajectory.selected["step"]
    assert trainer.step_log == uninterrupted.step_log
    for (name, a), b in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b), name  # the selected (best) point's weights


def test_unlearn_model_resumes_a_checkpoint_resumable_finds(
    tiny_model, tokenizer, micro_splits, tmp_path, monkeypatch
):
    """The in-memory API that `wagle run` cells use: ``resumable`` says whether a directory
    holds a checkpoint of this very run, and ``unlearn_model(resume=True)`` continues it."""
    config = UnlearnConfig(method="npo", max_steps=4, batch_size=2, save_every=2,
                           gradient_accumulation_steps=1, learning_rate=1e-2, max_length=48,
                           progress=False)  # fmt: skip
    options = method_options("npo")
    forget, retain = micro_splits["forget10"][:8], micro_splits["retain90"][:8]
    run, record = cfg.to_dict(config), dataclasses.asdict(options)

    def unlearn(out: Path, resume: bool = False):
        model = tiny_model(seed=0)
        return unlearn_model(model, tokenizer, forget, retain, config, options, out=out,
                             resume=resume)  # fmt: skip

    step = MaskedUnlearningTrainer.training_step

    def crash_in_step_3(self, *args, **kwargs):
        if self.state.global_step == 2:
            raise Crash
        return step(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(MaskedUnlearningTrainer, "training_step", crash_in_step_3)
        with pytest.raises(Crash):
            unlearn(tmp_path / "a")
    assert resumable(tmp_path / "a", run, record)
    assert not resumable(tmp_path / "a", run | {"learning_rate": 1e-3}, record)
    assert not resumable(tmp_path / "a", run, record | {"beta": 0.5})
    assert not resumable(tmp_path / "b", run, record)  # nothing there

    calls = []
    with monkeypatch.context() as patch:
        patch.setattr(
            MaskedUnlearningTrainer,
            "training_step",
            lambda self, *a, **k: calls.append(1) or step(self, *a, **k),
        )
        resumed = unlearn(tmp_path / "a", resume=True)
    assert len(calls) == 2  # steps 3 and 4: it went on from checkpoint 2
    assert not checkpoint_root(tmp_path / "a").exists()  # deleted once the run completed
    uninterrupted = unlearn(tmp_path / "b")
    assert resumed.step_log == uninterrupted.step_log
    for (name, a), b in zip(
        resumed.model.named_parameters(), uninterrupted.model.parameters(), strict=True
    ):
        assert torch.equal(a, b), name


def test_a_checkpoint_at_an_evaluated_epoch_end_holds_that_epochs_point(
    tiny_model, tokenizer, micro_splits, tmp_path
):
    """The default schedule (a point every 2 epochs, at the epoch's end) and a checkpoint at
    that end: 4 steps an epoch, 12 steps, save every 4. Checkpoint 8 holds the point of step 8
    (epoch 2's end), and the run resumed from it (killed after step 9) measures and selects
    what the uninterrupted run does: points at steps 0, 8 and 12."""
    default = {"every": UnlearnConfig.eval_every, "epochs": UnlearnConfig.eval_epochs}
    assert default == {"every": 0, "epochs": 2}
    common = {"max_steps": 12, "save_every": 4, "schedule": default}
    with pytest.raises(Crash):
        _train(tiny_model, tokenizer, micro_splits, tmp_path / "a", crash_at=9, **common)
    checkpoint = tmp_path / "a" / "checkpoint-8"
    assert [p["step"] for p in json.loads((checkpoint / STATE_FILE).read_text())["points"]] == [
        0,
        8,
    ]
    model, trainer = _train(
        tiny_model, tokenizer, micro_splits, tmp_path / "a", resume=checkpoint, **common
    )
    reference, uninterrupted = _train(tiny_model, tokenizer, micro_splits, tmp_path / "b", **common)
    assert [p["step"] for p in uninterrupted.trajectory.points] == [0, 8, 12]
    assert _figures(trainer.trajectory.points) == _figures(uninterrupted.trajectory.points)
    assert trainer.trajectory.selected["step"] == uninterrupted.trajectory.selected["step"]
    for (name, a), b in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b), name
