"""Two processes on CPU (``torchrun --nproc_per_node 2``, gloo): every method trains, and a
global batch gives the same number of optimizer steps as one process.

One torchrun launch runs all cases, to pay the start-up once. 16 forget samples, 2 per device:
with ``global_batch_size`` 8 one process accumulates 4 micro-batches per step and two
processes 2 each, so both take 16 / 8 = 2 steps (with accumulation fixed at 4, two processes
would take 1). Each method takes 2 optimizer steps without accumulation: DDP reports a
parameter that got no gradient (RMU's layers above the steered one) at the step after.
"""

from __future__ import annotations

import json

from wagle.unlearning import METHODS, UnlearnConfig, unlearn

WORKER = """
import json, os, sys
import torch
from wagle.unlearning import METHODS, UnlearnConfig, unlearn

ws = sys.argv[1]
common = dict(model=f"{ws}/model", forget=f"{ws}/forget.jsonl", retain=f"{ws}/retain.jsonl",
              batch_size=2, max_length=40, learning_rate=1e-3, progress=False)
rank = int(os.environ["RANK"])
steps = {}
result = unlearn(UnlearnConfig(out=f"{ws}/global", epochs=1, global_batch_size=8, **common))
steps["global_batch"] = result.step_log[-1]["step"]
for method in sorted(METHODS):
    config = UnlearnConfig(out=f"{ws}/{method}", method=method, max_steps=2,
                           gradient_accumulation_steps=1, **common)
    steps[method] = unlearn(config).step_log[-1]["step"]
world = torch.distributed.get_world_size()
with open(f"{ws}/rank{rank}.json", "w") as handle:
    json.dump({"world": world, "steps": steps}, handle)
"""


def _write_data(tmp_path, tiny_model, tokenizer, micro_splits) -> None:
    tiny_model(seed=0).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    for name, records in (("forget", micro_splits["forget10"][:16]),
                          ("retain", micro_splits["retain90"][:16])):  # fmt: skip
        lines = [json.dumps(r) for r in records]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


def test_every_method_and_the_global_batch_on_two_processes(
    tmp_path, tiny_model, tokenizer, micro_splits, torchrun
):
    _write_data(tmp_path, tiny_model, tokenizer, micro_splits)
    one_process = unlearn(
        UnlearnConfig(
            model=str(tmp_path / "model"), forget=str(tmp_path / "forget.jsonl"),
            retain=str(tmp_path / "retain.jsonl"), out=str(tmp_path / "single"), epochs=1,
            global_batch_size=8, batch_size=2, max_length=40, progress=False,
        )
    )  # fmt: skip
    assert one_process.step_log[-1]["step"] == 2

    torchrun(WORKER, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == 2
    expected = {"global_batch": 2} | dict.fromkeys(METHODS, 2)
    assert ranks[0]["steps"] == ranks[1]["steps"] == expected
    for method in METHODS:
        assert (tmp_path / method / "model.safetensors").is_file()


def test_rmu_freezes_exactly_what_its_loss_never_reaches(tiny_model):
    """Layer 0 of 2 steered: layer 1, the final norm and the head get no gradient; steering
    the last layer (whose hidden state is taken after the final norm) leaves the norm."""
    from wagle.unlearning.methods.rmu import freeze_above

    frozen = freeze_above(tiny_model(), 0)
    assert {n.split(".")[2] if n.startswith("model.layers") else n for n in frozen} == {
        "1",
        "model.norm.weight",
        "lm_head.weight",
    }
    assert freeze_above(tiny_model(), 1) == ["lm_head.weight"]
