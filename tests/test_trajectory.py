"""Evaluation during unlearning: the trajectory, the selected checkpoint, early stopping."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from wagle.cli import main
from wagle.data.load import read_records
from wagle.data.playground import write
from wagle.errors import WagleError
from wagle.evaluation.degeneration import degeneration, repetition_rate
from wagle.unlearning import PairCollator, PairedDataset, UnlearnConfig, unlearn_model
from wagle.unlearning.objective import METHODS
from wagle.unlearning.run import _encode, training_arguments
from wagle.unlearning.trainer import MaskedUnlearningTrainer
from wagle.unlearning.trajectory import POINT_KEYS, TrajectoryCallback, select

FAST_EVAL = ["--max-new-tokens", "4", "--batch-size", "64"]


def point(step, quality=None, utility=0.8, prob=0.5, degenerate=False):
    return {"step": step, "forget_quality": quality, "model_utility": utility,
            "forget_prob": prob, "degenerate": degenerate}  # fmt: skip


# --- selection on synthetic trajectories ------------------------------------------------


def test_the_best_point_is_not_the_last():
    points = [point(0, 1e-20), point(10, 1e-5), point(20, 0.3), point(30, 1e-3)]
    selected, criterion = select(points, 0.95)
    assert selected["step"] == 20 and criterion["met_floor"]
    assert criterion["utility_threshold"] == pytest.approx(0.76)  # 0.95 × 0.8


def test_a_degenerate_point_is_never_selected_however_high_its_quality():
    points = [point(0, 1e-20), point(10, 1e-4), point(20, 0.9, degenerate=True), point(30, 1e-6)]
    assert select(points, 0.95)[0]["step"] == 10


def test_points_below_the_utility_floor_are_not_eligible():
    # 0.75 < 0.95 × 0.8 = 0.76: step 20's forget quality does not count
    points = [point(0, 1e-20), point(10, 1e-4), point(20, 0.5, utility=0.75)]
    assert select(points, 0.95)[0]["step"] == 10
    assert select(points, 0.9)[0]["step"] == 20  # 0.75 ≥ 0.9 × 0.8 = 0.72


def test_when_no_point_meets_the_floor_the_last_is_kept_and_flagged():
    points = [point(0, 1e-20), point(10, 0.5, utility=0.1), point(20, 0.2, degenerate=True)]
    selected, criterion = select(points, 0.95)
    assert selected["step"] == 20 and not criterion["met_floor"]
    assert "kept the last" in criterion["note"]


def test_without_reference_the_lowest_forget_probability_wins():
    points = [point(0, prob=0.9), point(10, prob=0.2), point(20, prob=0.4)]
    selected, criterion = select(points, 0.95)
    assert selected["step"] == 10 and criterion["rule"] == "lowest forget_prob"


def test_ties_go_to_higher_utility_then_the_earlier_step():
    points = [point(0, 1e-9), point(10, 0.1, 0.8), point(20, 0.1, 0.9), point(30, 0.1, 0.9)]
    assert select(points, 0.95)[0]["step"] == 20


# --- degeneration ----------------------------------------------------------------------


def test_repetition_rate_counts_repeated_word_trigrams():
    # "a b a b a b": trigrams aba, bab, aba, bab → 2 distinct of 4 → 1 − 2/4 = 0.5
    assert repetition_rate("a b a b a b") == 0.5
    assert repetition_rate("the cat sat on the mat") == 0.0
    assert repetition_rate("too short") == 0.0


def test_degenerate_when_repetitive_or_far_below_the_reference_rouge():
    fluent = ["she was born in Paris in 1950"]
    assert degeneration(fluent, 0.3, 0.31) == {
        "repetition": 0.0,
        "rouge_gap": pytest.approx(-0.01),
        "degenerate": False,
    }
    assert degeneration(fluent, 0.1, 0.31)["degenerate"]  # 0.1 < 0.5 × 0.31
    assert degeneration(["x x x x x x"], 0.3, None) == {
        "repetition": 0.75,  # 1 distinct of 4 trigrams
        "rouge_gap": None,
        "degenerate": True,
    }


# --- the callback inside a real Trainer run -----------------------------------------------


class ScriptedEvaluator:
    """Plays back figures for successive points and keeps a copy of the weights at each."""

    def __init__(self, qualities: list[float]) -> None:
        self.qualities, self.weights = qualities, []

    def __call__(self, model):
        self.weights.append({n: p.detach().clone() for n, p in model.named_parameters()})
        quality = self.qualities[len(self.weights) - 1]
        return {k: None for k in POINT_KEYS[3:]} | {
            "forget_quality": quality, "model_utility": 1.0, "forget_prob": 0.5,
            "degenerate": False,
        }  # fmt: skip


def run_trainer(tiny_model, tokenizer, micro_splits, callback, max_steps, mask_of=None):
    model = tiny_model(seed=0)
    mask = None if mask_of is None else mask_of(model)
    config = UnlearnConfig(method="graddiff", max_steps=max_steps, batch_size=2,
                           gradient_accumulation_steps=1, learning_rate=1e-2, max_length=48,
                           progress=False)  # fmt: skip
    forget, retain = micro_splits["forget10"][:8], micro_splits["retain90"][:8]
    data = PairedDataset(_encode(tokenizer, forget, config), _encode(tokenizer, retain, config))
    objective = METHODS["graddiff"](None)
    trainer = MaskedUnlearningTrainer(
        model=model,
        args=training_arguments(config, "unused"),
        train_dataset=data,
        data_collator=PairCollator(tokenizer.pad_token_id),
        objective=objective,
        mask=mask,
        trajectory=callback,
    )
    objective.prepare(model, data, tokenizer.pad_token_id)
    trainer.train()
    return model, trainer


def test_the_model_ends_with_the_selected_steps_weights(tiny_model, tokenizer, micro_splits):
    evaluator = ScriptedEvaluator([1e-9, 1e-4, 0.2, 1e-3, 1e-5])
    lines: list[str] = []
    callback = TrajectoryCallback(evaluator, every=1, log=lines.append)
    model, _ = run_trainer(tiny_model, tokenizer, micro_splits, callback, max_steps=4)
    assert len(lines) == 5 and not any("early stop" in line for line in lines)  # max_steps ≠ early
    assert [p["step"] for p in callback.points] == [0, 1, 2, 3, 4]
    assert callback.selected["step"] == 2
    at_step_2 = evaluator.weights[2]
    for name, param in model.named_parameters():
        assert torch.equal(param, at_step_2[name]), name
    assert not torch.equal(model.lm_head.weight, evaluator.weights[4]["lm_head.weight"])


def test_the_mask_checksum_covers_the_restored_checkpoint(tiny_model, tokenizer, micro_splits):
    """A selected copy in which an unselected weight moved is refused, though the last
    weights (verified first) are fine."""

    class Corrupting(TrajectoryCallback):
        def finish(self, model):
            self.best_state["lm_head.weight"][0, 0] += 1.0  # row 0 is outside the mask
            super().finish(model)

    def half_of_lm_head(model):
        mask = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
        mask["lm_head.weight"][0] = False
        return mask

    callback = Corrupting(ScriptedEvaluator([1e-9, 0.5, 1e-3]), every=1, log=lambda line: None)
    with pytest.raises(WagleError, match="masked weights changed"):
        run_trainer(tiny_model, tokenizer, micro_splits, callback, 2, mask_of=half_of_lm_head)


def test_early_stopping_stops_once_the_best_is_patience_evaluations_old(
    tiny_model, tokenizer, micro_splits
):
    evaluator = ScriptedEvaluator([1e-9, 0.5, 1e-3, 1e-4] + [1.0] * 6)
    lines: list[str] = []
    callback = TrajectoryCallback(evaluator, every=1, early_stop=2, log=lines.append)
    _, trainer = run_trainer(tiny_model, tokenizer, micro_splits, callback, max_steps=9)
    # best at step 1; steps 2 and 3 do not beat it → stop after step 3 (1.0 never seen)
    assert trainer.state.global_step == 3
    assert [p["step"] for p in callback.points] == [0, 1, 2, 3]
    assert lines[-1].startswith("step 3 | forget quality 0.0001 |")
    assert lines[-1].endswith("| early stop") and "best: step 1 (0.5)" in lines[-1]
    assert not any("early stop" in line for line in lines[:-1])


def test_points_every_epoch_by_default(tiny_model, tokenizer, micro_splits):
    # 8 forget samples, batch 2: 4 steps per epoch; every 2nd epoch → steps 0, 8 (end = 8)
    evaluator = ScriptedEvaluator([1e-9, 0.1, 0.2, 0.3])
    callback = TrajectoryCallback(evaluator, epochs=2, log=lambda line: None)
    run_trainer(tiny_model, tokenizer, micro_splits, callback, max_steps=10)
    assert [p["step"] for p in callback.points] == [0, 8, 10]  # and the last step


# --- end to end on a tiny playground, against a reference ---------------------------------


@pytest.fixture
def workspace(tmp_path, saved_inputs, tiny_model, tokenizer, micro_splits):
    """Tiny target model, forget/retain files, benchmark data and a reference evaluation of a
    'retain model' (another random tiny model)."""
    saved_inputs(n_retain=8)
    write(micro_splits, tmp_path / "data")
    tiny_model(seed=7).save_pretrained(tmp_path / "retain")
    tokenizer.save_pretrained(tmp_path / "retain")
    args = ["evaluate", "--model", str(tmp_path / "retain"), "--data", str(tmp_path / "data")]
    assert main([*args, "--out", str(tmp_path / "ref"), *FAST_EVAL]) == 0
    return tmp_path


def unlearn_args(ws, out: str, *extra: str) -> list[str]:
    return [
        "unlearn", "--model", str(ws / "model"), "--forget", str(ws / "forget.jsonl"),
        "--retain", str(ws / "retain.jsonl"), "--out", str(ws / out), "--method", "graddiff",
        "--max-steps", "3", "--batch-size", "2", "--gradient-accumulation-steps", "1",
        "--learning-rate", "5e-2", "--max-length", "48", "--no-progress",
        "--eval-reference", str(ws / "ref" / "eval.json"), "--eval-every", "1",
        "--eval-forget-size", "4", "--eval-retain-size", "4", *extra,
    ]  # fmt: skip


def test_unlearn_writes_the_trajectory_and_saves_the_selected_checkpoint(workspace, capsys):
    assert main(unlearn_args(workspace, "out", "--utility-floor", "0", "--keep-last")) == 0
    out = workspace / "out"
    trajectory = json.loads((out / "trajectory.json").read_text())
    points = trajectory["points"]
    assert [p["step"] for p in points] == [0, 1, 2, 3] and set(points[0]) == set(POINT_KEYS)
    assert all(p["forget_quality"] is not None for p in points)
    run = json.loads((out / "run_config.json").read_text())
    assert run["selected"] == trajectory["selected"] and run["criterion"]["met_floor"]
    step = run["selected"]["step"]
    assert step > 0
    printed = capsys.readouterr().out
    assert printed.count("forget quality") >= 4 and f"kept step {step}" in printed

    # wagle evaluate on the saved model: the forget quality recorded for its step
    args = ["evaluate", "--model", str(out), "--data", str(workspace / "data"), *FAST_EVAL]
    assert main([*args, "--out", str(workspace / "ev"), "--reference", str(workspace / "ref")]) == 0
    evaluation = json.loads((workspace / "ev" / "eval.json").read_text())
    assert evaluation["forget_quality"] == pytest.approx(run["selected"]["forget_quality"])
    assert evaluation["summary"]["degeneration"]["rouge_gap"] is not None

    last = AutoModelForCausalLM.from_pretrained(out / "last")
    selected = AutoModelForCausalLM.from_pretrained(out)
    same = torch.equal(last.lm_head.weight, selected.lm_head.weight)
    assert same == (step == 3)


def test_the_in_memory_path_gives_the_cli_model(workspace):
    assert main(unlearn_args(workspace, "out")) == 0
    config = UnlearnConfig(
        method="graddiff", max_steps=3, batch_size=2, gradient_accumulation_steps=1,
        learning_rate=5e-2, max_length=48, progress=False,
        eval_reference=str(workspace / "ref" / "eval.json"), eval_every=1,
        eval_forget_size=4, eval_retain_size=4,
    )  # fmt: skip
    from transformers import AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(workspace / "model")
    tokenizer = AutoTokenizer.from_pretrained(workspace / "model")
    forget, retain = (read_records(workspace / f"{n}.jsonl") for n in ("forget", "retain"))
    result = unlearn_model(model, tokenizer, forget, retain, config)
    saved = json.loads((workspace / "out" / "trajectory.json").read_text())
    assert result.selected == saved["selected"] | {"eval_seconds": result.selected["eval_seconds"]}
    cli = AutoModelForCausalLM.from_pretrained(workspace / "out")
    for (name, a), b in zip(result.model.named_parameters(), cli.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_without_reference_lora_runs_are_evaluated_and_merged(workspace):
    """The eval_benchmark path (no forget quality) with LoRA: the selection is restored into
    the adapters, which are then merged into a plain model."""
    from transformers import AutoTokenizer

    config = UnlearnConfig(
        method="graddiff", max_steps=2, batch_size=2, gradient_accumulation_steps=1,
        learning_rate=5e-2, max_length=48, progress=False, lora=True, lora_rank=2,
        eval_benchmark="playground", eval_data=str(workspace / "data"), eval_every=1,
        eval_forget_size=4, eval_retain_size=4, utility_floor=0.0,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(workspace / "model")
    tokenizer = AutoTokenizer.from_pretrained(workspace / "model")
    forget, retain = (read_records(workspace / f"{n}.jsonl") for n in ("forget", "retain"))
    result = unlearn_model(model, tokenizer, forget, retain, config, out=workspace / "run")
    assert [p["step"] for p in result.trajectory] == [0, 1, 2]
    assert all(p["forget_quality"] is None and p["rouge_gap"] is None for p in result.trajectory)
    assert result.criterion["rule"] == "lowest forget_prob"
    eligible = [p for p in result.trajectory[1:] if not p["degenerate"]] or result.trajectory[-1:]
    best = min(eligible, key=lambda p: p["forget_prob"])
    assert result.selected["step"] == best["step"]
    assert not any("lora" in name for name, _ in result.model.named_parameters())
    saved = json.loads((workspace / "run" / "trajectory.json").read_text())
    assert saved["selected"]["step"] == best["step"] and len(saved["points"]) == 3
