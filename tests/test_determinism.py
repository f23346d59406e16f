"""Same inputs and seed, same machine: byte-identical masks, identical unlearned weights and
identical eval.json figures. Each pipeline step is run twice, in process."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from wagle.cli import main


def _attribute(ws, out: str) -> None:
    argv = [
        "attribute", "--model", str(ws / "model"), "--forget", str(ws / "forget.jsonl"),
        "--retain", str(ws / "retain.jsonl"), "--out", str(ws / out), "--ratio", "0.5",
        "--method", "random", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0


def test_attribution_writes_byte_identical_masks(tmp_path, saved_inputs):
    saved_inputs()
    for method in ("wagle", "random"):
        for out in ("a.safetensors", "b.safetensors"):
            argv = [
                "attribute", "--model", str(tmp_path / "model"),
                "--forget", str(tmp_path / "forget.jsonl"),
                "--retain", str(tmp_path / "retain.jsonl"), "--out", str(tmp_path / out),
                "--ratio", "0.5", "--method", method, "--quiet", "--overwrite",
            ]  # fmt: skip
            assert main(argv) == 0
        a, b = ((tmp_path / f).read_bytes() for f in ("a.safetensors", "b.safetensors"))
        assert a == b, method


def test_unlearning_gives_identical_weights(tmp_path, saved_inputs):
    saved_inputs(n_retain=16)
    _attribute(tmp_path, "mask.safetensors")
    for out in ("a", "b"):
        argv = [
            "unlearn", "--model", str(tmp_path / "model"), "--forget", str(tmp_path / "forget.jsonl"),
            "--retain", str(tmp_path / "retain.jsonl"), "--out", str(tmp_path / out),
            "--mask", str(tmp_path / "mask.safetensors"), "--method", "npo", "--max-steps", "3",
            "--batch-size", "2", "--gradient-accumulation-steps", "2", "--learning-rate", "1e-2",
            "--max-length", "48", "--no-progress",
        ]  # fmt: skip
        assert main(argv) == 0
    a, b = (load_file(tmp_path / d / "model.safetensors") for d in ("a", "b"))
    original = load_file(tmp_path / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], original[k]) for k in a)  # it did train
    for key in a:
        assert torch.equal(a[key], b[key]), key
    logs = [json.loads((tmp_path / d / "training_log.json").read_text()) for d in ("a", "b")]
    assert logs[0] == logs[1]


def test_evaluation_gives_identical_figures(tmp_path, saved_inputs, micro_splits):
    from wagle.data.playground import write

    saved_inputs()
    write(micro_splits, tmp_path / "data")
    results = []
    for out in ("a", "b"):
        argv = [
            "evaluate", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data"),
            "--out", str(tmp_path / out), "--max-new-tokens", "4",
        ]  # fmt: skip
        assert main(argv) == 0
        result = json.loads((tmp_path / out / "eval.json").read_text())
        results.append({k: v for k, v in result.items() if k != "seconds"})
    assert results[0]["summary"] == results[1]["summary"]
    assert results[0]["sections"] == results[1]["sections"]
