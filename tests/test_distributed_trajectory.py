"""Two processes (torchrun, gloo): the trajectory is evaluated once, on the main process, and
every process stops at the same step, selects the same point and ends with its weights —
also when another process would have computed other figures (a perturbed evaluator on rank 1,
the test hook: before, rank 1 decided to stop on its own figures and rank 0 waited forever in
the next collective). And a loss that is not finite on one process stops both."""

from __future__ import annotations

import json

WORKER = """
import hashlib, json, os, sys
import torch
from transformers import LlamaForCausalLM, TrainerCallback
from wagle.data.batching import encode_records
from wagle.data.load import read_records
from wagle.errors import WagleError
from wagle.unlearning import METHODS, MaskedUnlearningTrainer, PairCollator, PairedDataset
from wagle.unlearning.config import UnlearnConfig
from wagle.unlearning.objective import Objective, mean_nll
from wagle.unlearning.run import training_arguments
from wagle.unlearning.trajectory import POINT_KEYS, TrajectoryCallback
from wagle.models import load_tokenizer

ws, rank = sys.argv[1], int(os.environ["RANK"])
tokenizer = load_tokenizer(f"{ws}/model")


class Evaluator:
    # forget_prob from the weights; on rank 1 perturbed so that it would pick and stop
    # differently (every new point looks worse there)
    calls = 0

    def __call__(self, model):
        Evaluator.calls += 1
        total = float(sum(p.detach().double().abs().sum() for p in model.parameters()))
        prob = total / 1e4 + (1e3 * Evaluator.calls if rank == 1 else 0.0)
        return {k: None for k in POINT_KEYS[3:]} | {
            "forget_prob": prob, "model_utility": 1.0, "degenerate": False}


class BestStateSeen(TrainerCallback):
    held = False

    def on_step_end(self, args, state, control, **kwargs):
        BestStateSeen.held |= trajectory.best_state is not None


class NaNOnRank1(Objective):
    def __call__(self, model, batch):
        nll = mean_nll(model, batch.forget)
        bad = rank == 1 and self.calls == 1  # rank 1's second micro-batch (step 2)
        self.calls += 1
        return {"loss": nll * (float("nan") if bad else 1.0), "forget_nll": nll.detach()}


def trainer(objective, callbacks=(), trajectory=None, out="out"):
    model = LlamaForCausalLM.from_pretrained(f"{ws}/model")
    records = read_records(f"{ws}/forget.jsonl")
    data = PairedDataset(encode_records(tokenizer, records, max_length=64),
                         encode_records(tokenizer, records, max_length=64))
    config = UnlearnConfig(method="ga", max_steps=6, batch_size=1, gradient_accumulation_steps=1,
                           learning_rate=1e-2, progress=False)
    made = MaskedUnlearningTrainer(
        model=model, args=training_arguments(config, f"{ws}/{out}"), train_dataset=data,
        data_collator=PairCollator(tokenizer.pad_token_id), objective=objective,
        trajectory=trajectory, callbacks=list(callbacks))
    objective.prepare(model, data, tokenizer.pad_token_id)
    return made, model


trajectory = TrajectoryCallback(Evaluator(), every=1, early_stop=2, log=lambda line: None)
run, model = trainer(METHODS["ga"](), [BestStateSeen()], trajectory)
run.train()
digest = hashlib.sha256()
for name, param in model.named_parameters():
    digest.update(name.encode() + param.detach().numpy().tobytes())

objective = NaNOnRank1()
objective.calls = 0
try:
    trainer(objective, out="nan")[0].train()
    error = None
except WagleError as err:
    error = str(err)

json.dump({"calls": Evaluator.calls, "points": [p["step"] for p in trajectory.points],
           "forget_prob": [p["forget_prob"] for p in trajectory.points],
           "selected": trajectory.selected["step"], "last_step": run.state.global_step,
           "best_state_held": BestStateSeen.held, "digest": digest.hexdigest(),
           "error": error}, open(f"{ws}/rank{rank}.json", "w"))
"""


def test_one_evaluation_one_decision_on_two_processes(tmp_path, saved_inputs, torchrun):
    saved_inputs()
    torchrun(WORKER, timeout=300)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["calls"] == len(rank0["points"]) and rank1["calls"] == 0  # evaluated once
    for key in ("points", "forget_prob", "selected", "last_step", "digest"):
        assert rank0[key] == rank1[key], key
    assert rank0["best_state_held"] and not rank1["best_state_held"]  # one copy, on rank 0
    assert rank0["points"][0] == 0 and rank0["last_step"] == rank0["points"][-1]
    # both stopped together on the loss that was not finite on rank 1 only, at its step
    assert rank0["error"] == rank1["error"]
    assert rank0["error"].startswith("the loss became non-finite at step 2 ")
