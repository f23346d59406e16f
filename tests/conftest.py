"""Shared fixtures: a tokenizer trained on a micro playground, tiny random Llama models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from wagle.data.playground import BenchmarkSpec, WorldSpec, generate
from wagle.playground.tokenizer import train_sentencepiece_tokenizer, train_tokenizer

torch.set_num_threads(1)  # tiny models: threads cost more than they give, and CI has 2 cores


@pytest.fixture(scope="session")
def micro_splits():
    """All splits of a 20-author benchmark (200 author QA pairs) in a 20-author world."""
    world = WorldSpec(n_authors=20, n_countries=20, n_eval=10)
    return generate(BenchmarkSpec(n_authors=20, qa_per_author=10, n_holdout=4, seed=0, world=world))


@pytest.fixture(scope="session")
def tokenizer(micro_splits):
    texts = [r["question"] + " " + r["answer"] for rs in micro_splits.values() for r in rs]
    return train_tokenizer(texts, vocab_size=400, model_max_length=128)


@pytest.fixture(scope="session")  # a factory: module-scoped fixtures may build models too
def tiny_model(tokenizer):
    """Factory: a freshly initialised 2-layer Llama (hidden 16) for ``tokenizer``, seeded."""

    def make(seed: int = 0, **overrides) -> LlamaForCausalLM:
        torch.manual_seed(seed)
        sizes = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2}
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=128,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **(sizes | overrides),
        )
        return LlamaForCausalLM(config).eval()

    return make


@pytest.fixture
def random_mask():
    """Factory: a seeded mask selecting ``ratio`` of each parameter of ``model``, with one
    parameter fully out and one fully in (the edge cases of masked training)."""

    def make(model: torch.nn.Module, ratio: float = 0.5, seed: int = 0) -> dict:
        generator = torch.Generator().manual_seed(seed)
        mask = {
            n: torch.rand(p.shape, generator=generator) < ratio for n, p in model.named_parameters()
        }
        mask["model.layers.0.mlp.up_proj.weight"][:] = False
        mask["model.layers.1.mlp.down_proj.weight"][:] = True
        return mask

    return make


@pytest.fixture
def saved_inputs(tmp_path, tiny_model, tokenizer, micro_splits):
    """Factory: write ``model/`` (tiny model + tokenizer), ``forget.jsonl`` (8 forget10
    records) and ``retain.jsonl`` (``n_retain`` retain90 records) under ``tmp_path``;
    returns the model."""

    def write(n_retain: int = 8) -> LlamaForCausalLM:
        model = tiny_model(seed=0)
        model.save_pretrained(tmp_path / "model")
        tokenizer.save_pretrained(tmp_path / "model")
        for name, records in (
            ("forget", micro_splits["forget10"][:8]),
            ("retain", micro_splits["retain90"][:n_retain]),
        ):
            lines = [json.dumps(r) for r in records]
            (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        return model

    return write


@pytest.fixture(scope="session")
def sp_tokenizer(micro_splits):
    """A SentencePiece-style BPE laid out like Llama-2's, as a Llama fast tokenizer (no chat
    template), trained on the micro playground."""
    texts = [r["question"] + " " + r["answer"] for rs in micro_splits.values() for r in rs]
    return train_sentencepiece_tokenizer(texts, vocab_size=500, model_max_length=256)


@pytest.fixture
def torchrun(tmp_path):
    """Run ``script`` (which reads its workspace from ``sys.argv[1]``) in two CPU processes under
    ``torchrun`` (gloo), with ``tmp_path`` as the workspace; fails with the workers' stderr."""

    def run(script: str, timeout: int = 300) -> None:
        # Leave the process group before exit, as the CLI does: gloo threads alive at exit can
        # abort a worker ("terminate called without an active exception").
        script += (
            "\nimport torch.distributed as _dist\n"
            "if _dist.is_initialized():\n    _dist.destroy_process_group()\n"
        )
        (tmp_path / "worker.py").write_text(script)
        env = os.environ | {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        done = subprocess.run(
            [*command, "--nproc_per_node", "2", str(tmp_path / "worker.py"), str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]

    return run
