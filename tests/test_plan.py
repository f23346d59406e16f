"""The memory model against measured bytes on small models: parameters, gradients and
optimizer state exactly; activations (bytes autograd saves) within 15%."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from wagle.attribution.select import select_mask
from wagle.cli import main
from wagle.errors import WagleError
from wagle.plan import (
    Shape,
    activation_bytes,
    attribution_memory,
    autocast_cache_bytes,
    evaluation_logits_bytes,
    fsdp_parts,
    fsdp_plan_table,
    load_shape,
    sharded_elements,
    trainable_parameters,
    unlearning_memory,
)
from wagle.sequence import sequence_nll
from wagle.unlearning.selective_adamw import SelectiveAdamW

CONFIG = {
    "model_type": "llama", "vocab_size": 1500, "hidden_size": 96, "intermediate_size": 256,
    "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 64, "tie_word_embeddings": False,
}  # fmt: skip


def _model(dtype=torch.float32, **overrides) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = {k: v for k, v in (CONFIG | overrides).items() if k != "model_type"}
    return LlamaForCausalLM(LlamaConfig(**config)).to(dtype)


@pytest.mark.parametrize("tied", [False, True])
def test_parameter_count_from_the_config_is_exact(tmp_path, tied):
    model = _model(tie_word_embeddings=tied)
    (tmp_path / "config.json").write_text(json.dumps(CONFIG | {"tie_word_embeddings": tied}))
    assert load_shape(str(tmp_path)).parameters == sum(p.numel() for p in model.parameters())


def test_llama2_7b_preset_has_its_published_size():
    assert load_shape("llama2-7b").parameters == 6_738_415_616


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_gradient_and_optimizer_state_bytes_are_exact(tmp_path, dtype):
    """Dense AdamW: two moments in the weights' dtype per weight; selective at ρ = 0.2:
    12 bytes (index and moments; +4 for an fp32 master of bf16 weights) per selected weight."""
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    name = "bfloat16" if dtype == torch.bfloat16 else "float32"
    predicted = {
        state: unlearning_memory(
            load_shape(str(tmp_path)),
            0.2,
            name,
            state=state,
            devices=1,
            checkpointing=False,
            batch_size=1,
            max_length=8,
        )
        for state in ("full", "selected")
    }
    ids = torch.randint(0, 1500, (1, 8))
    measured = {}
    for state in ("full", "selected"):
        model = _model(dtype)
        model(input_ids=ids, labels=ids).loss.backward()
        grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters())
        if state == "full":
            optimizer = torch.optim.AdamW(model.parameters())
        else:
            g = torch.Generator().manual_seed(0)
            scores = {n: torch.rand(p.shape, generator=g) for n, p in model.named_parameters()}
            mask = select_mask(scores, 0.2)
            selected = {id(p): mask[n] for n, p in model.named_parameters()}
            optimizer = SelectiveAdamW(model.parameters(), selected)
        optimizer.step()
        state_bytes = sum(
            t.numel() * t.element_size()
            for s in optimizer.state.values()
            for t in s.values()
            if isinstance(t, torch.Tensor) and t.dim() > 0  # not AdamW's scalar step
        )
        measured[state] = (grads, state_bytes)
    for state in ("full", "selected"):
        parts = predicted[state]
        assert measured[state] == (parts["gradients"], parts["optimizer_state"]), state


def _saved_bytes(model, batch: int, length: int, checkpointing: bool) -> int:
    """Bytes of the tensors autograd saves for backward (weights excluded), one forward."""
    if checkpointing:
        model.gradient_checkpointing_enable()
        model.train()
    storages: dict[int, int] = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(0, 1500, (batch, length), generator=torch.Generator().manual_seed(0))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        sequence_nll(model, inputs)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in storages.items() if ptr not in weights)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("checkpointing", [False, True], ids=["no-ckpt", "ckpt"])
def test_activation_model_is_within_15_percent_of_saved_bytes(dtype, checkpointing):
    """The saved tensors are what the model predicts, less the loss gradient (V·(4 + a) per
    token, alive only in backward) and, with checkpointing, the one recomputed layer."""
    shape = Shape.from_config(CONFIG)
    model = _model(getattr(torch, dtype))
    batch, length = 3, 48
    measured = _saved_bytes(model, batch, length, checkpointing)
    a = 2 if dtype == "bfloat16" else 4
    layer = (10 * shape.hidden + 4 * shape.intermediate) * a + (4 * shape.hidden if a == 2 else 0)
    transient = shape.vocab * (4 + a) + (layer if checkpointing else 0)
    predicted = (
        activation_bytes(shape, batch * length, dtype, checkpointing) - batch * length * transient
    )
    assert abs(predicted - measured) / measured < 0.15, (predicted, measured)


def test_plan_command_prints_the_7b_figures_as_json(capsys):
    assert main(["plan", "--model", "llama2-7b", "--ratio", "0.2", "0.5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    selective = [r for r in rows if r["state"] == "selected" and r["ratio"] == 0.2]
    dense = [r for r in rows if r["state"] == "full" and r["ratio"] == 0.2]
    for s, d in zip(selective, dense, strict=True):
        assert s["parts"]["optimizer_state"] < d["parts"]["optimizer_state"]


def test_an_unknown_model_is_a_user_error():
    with pytest.raises(WagleError, match="neither a preset"):
        load_shape("llama-9000")
    with pytest.raises(WagleError, match="models llama, mistral, qwen2"):
        Shape.from_config({"model_type": "gpt2"})


PEAK_CHILD = """
import json, sys
from pathlib import Path
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from wagle.attribution.gradients import FORGET_GRAD, RETAIN_GRAD, collect_statistics
from wagle.sequence import sequence_nll

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

def reset():
    Path("/proc/self/clear_refs").write_text("5")
    return status("VmRSS")

config, batch, length = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(**config))
ids = torch.randint(0, config["vocab_size"], (batch, length))
examples = [{"input_ids": row, "labels": row} for row in ids.tolist()]
base = reset()
collect_statistics(model, examples, examples, [n for n, _ in model.named_parameters()],
                   frozenset({FORGET_GRAD, RETAIN_GRAD}), batch_size=batch, pad_token_id=0,
                   progress=False)
attribution = status("VmHWM") - base
model.train()
inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
base = reset()
optimizer = torch.optim.AdamW(model.parameters(), foreach=False)
loss = sum((nll / n).mean() for nll, n in [sequence_nll(model, inputs), sequence_nll(model, inputs)])
loss.backward()
optimizer.step()
print(json.dumps({"attribution": attribution, "unlearning": status("VmHWM") - base}))
"""


def test_predicted_peaks_are_within_30_percent_of_measured_peak_rss():
    """A 9M-parameter Llama in a fresh process: peak RSS above the model of one attribution
    (forget and retain passes, fp32 sums) and of one dense AdamW step on a forget + retain
    batch, against the plan's bytes above the weights (no mask on either side)."""
    config = CONFIG | {"vocab_size": 8000, "hidden_size": 256, "intermediate_size": 688}
    config |= {"num_hidden_layers": 4, "max_position_embeddings": 128}
    shape = Shape.from_config(config)
    batch, length = 4, 128
    # a fixed mmap threshold: glibc returns every large block to the OS when it is freed, so
    # the second phase's peak is not hidden by memory the first one left in the heap
    env = os.environ | {"OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    args = [
        json.dumps({k: v for k, v in config.items() if k != "model_type"}),
        str(batch),
        str(length),
    ]
    done = subprocess.run(
        [sys.executable, "-c", PEAK_CHILD, *args], env=env, capture_output=True, text=True, timeout=120
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    attribution = attribution_memory(
        shape, "float32", checkpointing=False, batch_size=batch, max_length=length
    )
    unlearning = unlearning_memory(
        shape, 1.0, "float32", state="full", devices=1, checkpointing=False,
        batch_size=batch // 2, max_length=length,
    )  # fmt: skip
    predicted = {
        "attribution": sum(attribution.values()) - attribution["weights"],
        "unlearning": sum(unlearning.values()) - unlearning["weights"],
    }
    for stage, value in predicted.items():
        assert abs(value - measured[stage]) / measured[stage] < 0.3, (stage, value, measured)


# --- what a recipe adds: the autocast cache, frozen reference copies, evaluation logits -----


def _peak_bytes(fn) -> int:
    """The peak of the bytes tensors held while ``fn`` runs, above those held before (the
    profiler's allocation and free events, in time order). An op's own frees are placed at
    its end: cross-entropy frees its log-softmax after its child op made it, not before."""
    activity = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activity, profile_memory=True) as profile:
        fn()
    events = sorted(
        (
            e.time_range.start if e.self_cpu_memory_usage > 0 else e.time_range.end,
            e.self_cpu_memory_usage,
        )
        for e in profile.events()
        if e.self_cpu_memory_usage
    )
    held = peak = 0
    for _, change in events:
        held += change
        peak = max(peak, held)
    return peak


@pytest.mark.parametrize("tied", [False, True])
def test_linear_entries_are_the_models_linear_weights(tied):
    model = _model(tie_word_embeddings=tied)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert Shape.from_config(CONFIG | {"tie_word_embeddings": tied}).linear_entries() == linear


def test_autocast_activations_and_weight_cache_are_within_15_percent_of_saved_bytes():
    """fp32 weights under bf16 autocast, no checkpointing: autograd saves the bf16 copies of
    the linear weights (the cache) with bf16 activations; the plan's activations (bf16) and
    cache, less the loss gradient alive only in backward, match the saved bytes."""
    shape = Shape.from_config(CONFIG)
    model = _model()
    batch, length = 3, 48
    with torch.autocast("cpu", dtype=torch.bfloat16):
        measured = _saved_bytes(model, batch, length, checkpointing=False)
    cache = autocast_cache_bytes(shape, "float32", autocast=True, checkpointing=False)
    assert cache == 2 * shape.linear_entries()
    predicted = activation_bytes(shape, batch * length, "bfloat16", False) + cache
    predicted -= batch * length * shape.vocab * (4 + 2)
    assert abs(predicted - measured) / measured < 0.15, (predicted, measured)


def test_with_checkpointing_the_trainer_turns_the_autocast_cache_off(tmp_path):
    """A checkpointed forward pass under bf16 autocast holds the cache at its end (2 bytes
    per linear weight, the plan's figure, within 10%); with the cache off, as the trainer
    sets it under checkpointing, only the output head's copy is left (the plan's figure)."""
    from accelerate.utils import AutocastKwargs

    config = CONFIG | {"vocab_size": 300, "hidden_size": 256, "intermediate_size": 688}
    shape = Shape.from_config(config)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in config.items() if k != "model_type"}))
    model.train()
    model.gradient_checkpointing_enable({"use_reentrant": False})
    ids = torch.randint(0, 300, (2, 16), generator=torch.Generator().manual_seed(0))

    def forward(cache: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=cache):
            model(input_ids=ids)

    on, off = _peak_bytes(lambda: forward(True)), _peak_bytes(lambda: forward(False))
    full = autocast_cache_bytes(shape, "float32", autocast=True, checkpointing=False)
    head = autocast_cache_bytes(shape, "float32", autocast=True, checkpointing=True)
    assert abs((on - off) - (full - head)) / (full - head) < 0.1, (on, off, full, head)

    from wagle.unlearning import METHODS, MaskedUnlearningTrainer
    from wagle.unlearning.config import UnlearnConfig
    from wagle.unlearning.run import training_arguments

    run = UnlearnConfig(bf16=True, gradient_checkpointing=True, progress=False)
    trainer = MaskedUnlearningTrainer(
        model=model, args=training_arguments(run, str(tmp_path)), objective=METHODS["ga"]()
    )
    assert trainer.accelerator.autocast_handler == AutocastKwargs(cache_enabled=False)


@pytest.mark.parametrize(
    ("method", "options", "copies"),
    [
        ("npo", {}, 0),  # reference NLLs precomputed: no copy
        ("npo", {"reference": "live"}, 1),
        ("graddiff", {"retain_loss": "kl"}, 1),
        ("npo", {"reference": "live", "retain_loss": "kl"}, 2),
        ("rmu", {"rmu_layer": 1}, 1),
    ],
)
def test_frozen_reference_copies_are_the_bytes_the_method_keeps(
    method, options, copies, tiny_model, tokenizer, micro_splits
):
    """Exact: the plan's reference copies are the parameters of the frozen models the
    method's ``prepare`` made; and RMU's trainable parameters are those it leaves trainable."""
    from wagle.data.batching import encode_records
    from wagle.unlearning import METHODS, PairedDataset
    from wagle.unlearning.config import method_options

    model = tiny_model(seed=0)
    examples = encode_records(tokenizer, micro_splits["forget10"][:2], max_length=32)
    objective = METHODS[method](method_options(method, options))
    objective.prepare(model, PairedDataset(examples, examples), 0)
    holders = [objective] + ([objective.retain] if hasattr(objective, "retain") else [])
    frozen = [m for h in holders for m in vars(h).values() if isinstance(m, torch.nn.Module)]
    kept = sum(p.numel() * p.element_size() for m in frozen for p in m.parameters())
    shape = Shape.from_config(model.config.to_dict())
    trainable = trainable_parameters(shape, objective.options.trained_layers(shape.layers))
    parts = unlearning_memory(
        shape, 1.0, "float32", state="full", devices=1, checkpointing=False, batch_size=1,
        max_length=8, reference_copies=objective.options.frozen_copies(), trainable=trainable,
    )  # fmt: skip
    assert parts["reference_copies"] == kept == copies * shape.parameters * 4
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_evaluation_logits_are_within_15_percent_of_the_likelihood_pass_peak(
    tiny_model, tokenizer, micro_splits
):
    """A trajectory point's likelihood pass (``answer_nll``, one batch of 16 questions) on a
    tiny model whose logits dominate: its measured peak against the plan's logits bytes for
    the batch's labelled tokens (logits exist at answer positions only), within 15%."""
    from wagle.data.batching import encode_records
    from wagle.evaluation.likelihood import answer_nll

    model = tiny_model(seed=0)
    records = micro_splits["forget10"][:16]
    labelled = sum(sum(t != -100 for t in e["labels"]) for e in encode_records(tokenizer, records))
    measured = _peak_bytes(lambda: answer_nll(model, tokenizer, records, batch_size=16))
    shape = Shape.from_config(model.config.to_dict())
    predicted = evaluation_logits_bytes(shape, False, tokens=labelled)
    assert abs(predicted - measured) / measured < 0.15, (predicted, measured)


# ---- FSDP2 ----------------------------------------------------------------------------------


def test_llama2_70b_preset_has_its_published_size():
    assert load_shape("llama2-70b").parameters == 68_976_648_192


def test_fsdp_shards_every_per_weight_part_and_adds_the_gathered_layers():
    """Llama-2-13B over 8 devices: every dim 0 divides by 8, so weights, gradients, mask and
    optimizer state are exactly 1/8 of one device's; no DDP buckets; in flight, two units of a
    decoder layer's size (317,204,480: 4 attention matrices 5120², 3 MLP matrices
    5120 × 13824, 2 norms; larger than the head's 32000 × 5120), in bf16 (2 bytes), for the
    weights and again for their gradients."""
    shape = load_shape("llama2-13b")
    one = unlearning_memory(
        shape, 0.2, "bfloat16", state="selected", devices=1, checkpointing=True,
        batch_size=1, max_length=512,
    )  # fmt: skip
    eight = fsdp_parts(one, shape, 8, "bfloat16")
    for part in ("weights", "gradients", "mask", "optimizer_state"):
        assert eight[part] * 8 == one[part], part
    assert "ddp_buckets" not in eight and eight["activations"] == one["activations"]
    assert eight["gathered_weights"] == eight["gathered_gradients"] == 2 * 317_204_480 * 2
    assert sharded_elements(shape, 8) * 8 == shape.parameters


def test_fsdp_pads_each_tensor_to_whole_rows_per_device():
    """3 devices, vocabulary 7, hidden 5, intermediate 6, one layer, tied head: each tensor
    is stored in chunks of ceil(rows / 3) rows: embedding 3 × 5, four attention matrices
    2 × 5 each, gate and up 2 × 5, down 2 × 6, three norms 2 × 1: 93 entries (240 / 3 = 80
    without the padding)."""
    shape = Shape(vocab=7, hidden=5, intermediate=6, layers=1, heads=1, kv_heads=1,
                  head_dim=5, tied=True, qkv_bias=False)  # fmt: skip
    assert shape.parameters == 240
    assert sharded_elements(shape, 3) == 15 + 4 * 10 + 2 * 10 + 12 + 3 * 2 == 93


def test_plan_command_prints_per_device_fsdp_rows(capsys):
    argv = ["plan", "--model", "llama2-70b", "--ratio", "0.2", "--fsdp", "8", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["devices"] for r in rows} == {8} and all(r["fsdp"] for r in rows)
    row = next(r for r in rows if r["stage"] == "unlearn" and r["dtype"] == "bfloat16")
    assert row["parts"]["weights"] == 68_976_648_192 * 2 // 8


def test_fsdp_and_devices_together_are_a_user_error(capsys):
    assert main(["plan", "--model", "llama2-13b", "--fsdp", "8", "--devices", "8"]) == 2
    assert "leave out --devices" in capsys.readouterr().err


DOCS = Path(__file__).parents[1]
DTYPES = {"bf16": "bfloat16", "fp32": "float32"}
STATES = {"sums fp32 on GPU": "sums float32", "sums fp32 on CPU": "sums float32-cpu"}


def fsdp_doc_rows(path: Path) -> list[list[str]]:
    """The cells of each row of the FSDP2 memory tables in ``path`` (header ``| model | ...``)."""
    rows, inside = [], False
    for line in path.read_text().splitlines():
        if line.startswith("| model | stage | weights | ρ |"):
            inside = True
        elif inside and line.startswith("| llama"):
            rows.append([c.strip().strip("*") for c in line.strip("|").split("|")])
        elif not line.startswith("|"):
            inside = False
    return rows


@pytest.mark.parametrize("doc", ["README.md", "docs/real-models.md"])
def test_the_fsdp2_tables_in_the_docs_are_the_plans(doc):
    """Every row of the 13B / 70B tables (8 GPUs, checkpointing on, 512 tokens) is the row of
    ``wagle plan --fsdp 8`` at that batch (attribution batches are twice the unlearning batch,
    so a row's attribution batch 8 is ``--batch-size 4``): its total, and in the docs its
    parts, in GiB to one decimal (empty cells are parts the stage does not have)."""
    rows = fsdp_doc_rows(DOCS / doc)
    assert len(rows) == 11
    for model, stage, dtype, ratio, state, batch, *parts, total in rows:
        unlearn = stage == "unlearn"
        plan = fsdp_plan_table(load_shape(model), [float(ratio or 0.1)], 8,
                               int(batch) // (1 if unlearn else 2), 512)  # fmt: skip
        row = next(
            r for r in plan
            if r["stage"] == stage and r["dtype"] == DTYPES[dtype] and r["checkpointing"]
            and r["state"] == STATES.get(state, state.split(" ")[0])
            and (not unlearn or r["ratio"] == float(ratio))
        )  # fmt: skip
        assert total == f"{row['total'] / 2**30:.1f}", (model, stage, dtype, ratio, state)
        if parts:
            p = row["parts"]
            expected = [p["weights"], p.get("gradients", p.get("gradient_sums", 0)),
                        p.get("mask", 0), p.get("optimizer_state", 0), p["activations"],
                        p["gathered_weights"] + p["gathered_gradients"]]  # fmt: skip
            assert parts == [f"{n / 2**30:.1f}" if n else "" for n in expected], (model, state)
