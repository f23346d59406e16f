"""Masked vs dense unlearning step time, measured side by side in one run.

Builds a random Llama (playground "small" shape by default), random QA-shaped data, and times
optimizer steps of ``MaskedUnlearningTrainer`` for one method and batch: once dense (no mask)
and once with a random mask selecting ``--ratio`` of every weight, for each method. Runs alternate
(dense, masked, dense, ...) so that load from other processes hits both alike; the figure is
the median masked step time divided by the median dense step time (goal ≤ 1.05).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/masked_step.py [--methods npo graddiff]

Prints the figures and writes them to benchmarks/results/masked_step.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback
from transformers.utils import logging as hf_logging

from wagle.unlearning import METHODS, MaskedUnlearningTrainer, PairCollator, PairedDataset
from wagle.unlearning.config import UnlearnConfig
from wagle.unlearning.run import training_arguments

RESULTS = Path(__file__).parent / "results" / "masked_step.json"


class StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def random_examples(n: int, vocab: int, prompt: int, answer: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, prompt + answer), generator=generator).tolist()
    return [{"input_ids": row, "labels": [-100] * prompt + row[prompt:]} for row in ids]


def time_steps(args: argparse.Namespace, mask_ratio: float | None, scratch: str) -> list[float]:
    """Per-step seconds of one run (the first ``args.skip`` steps dropped as warm-up)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    n = args.batch_size * (args.steps + 1)
    data = PairedDataset(
        random_examples(n, args.vocab, 24, 40, seed=1),
        random_examples(n, args.vocab, 24, 40, seed=2),
    )
    mask = None
    if mask_ratio is not None:
        generator = torch.Generator().manual_seed(0)
        mask = {
            name: torch.rand(p.shape, generator=generator) < mask_ratio
            for name, p in model.named_parameters()
        }
    run = UnlearnConfig(
        model="-", forget="-", retain="-", out="-", method=args.method, max_steps=args.steps,
        batch_size=args.batch_size, gradient_accumulation_steps=1, learning_rate=1e-4,
        weight_decay=0.01, warmup=0, progress=False,
    )  # fmt: skip
    timer = StepTimer()
    objective = METHODS[args.method]()
    trainer = MaskedUnlearningTrainer(
        model=model,
        args=training_arguments(run, scratch),
        train_dataset=data,
        data_collator=PairCollator(0),
        objective=objective,
        mask=mask,
        callbacks=[timer],
    )
    objective.prepare(model, data, 0)
    trainer.train()
    return timer.times[args.skip :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--methods", nargs="+", default=["npo", "graddiff"], choices=sorted(METHODS)
    )
    parser.add_argument("--ratio", type=float, default=0.5, help="fraction of weights selected")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--skip", type=int, default=2, help="warm-up steps not timed")
    parser.add_argument("--repeats", type=int, default=3, help="dense/masked run pairs")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=2048)
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    figures = {
        "mask_ratio": args.ratio,
        "batch_size": args.batch_size,
        "model": {"hidden": args.hidden, "layers": args.layers, "vocab": args.vocab},
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    for method in args.methods:
        args.method = method
        dense: list[float] = []
        masked: list[float] = []
        with tempfile.TemporaryDirectory() as scratch:
            for _ in range(args.repeats):
                dense += time_steps(args, None, scratch)
                masked += time_steps(args, args.ratio, scratch)
        figures[method] = {
            "timed_steps_each": len(dense),
            "dense_step_s_median": round(statistics.median(dense), 5),
            "masked_step_s_median": round(statistics.median(masked), 5),
            "masked_over_dense": round(statistics.median(masked) / statistics.median(dense), 4),
        }
    print(json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
