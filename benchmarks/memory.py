"""Memory at scale, measured side by side in one run on a random Llama of ~100M parameters.

- optimizer-state bytes at ρ = 0.2, selective vs dense state (goal ≤ 0.3×), and the step time
  of selective / dense-state masked AdamW (goal ≤ 1.1), runs alternating;
- attribution peak RSS above the loaded model: scores materialised (a dict of full score
  tensors, as before streaming) vs streamed (``LazyScores``), each in a fresh child process;
- mask file size and load time: packed vs the first format (one uint8 per weight);
- threshold selection time for 10M, 100M (and with --large 1B) scores: radix passes over a
  list of tensors, no concatenated copy;
- with --large: a synthetic mask of Llama-2-7B's shapes saved packed and loaded back tensor by
  tensor, peak RSS measured.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory.py [--large] [--parts ...]

Writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

from wagle.attribution import AttributionConfig, attribute, load_mask, open_mask, save_mask
from wagle.attribution.select import kth_largest, select_mask
from wagle.io import write_json
from wagle.plan import load_shape
from wagle.unlearning import METHODS, MaskedUnlearningTrainer, PairCollator, PairedDataset
from wagle.unlearning.config import UnlearnConfig
from wagle.unlearning.run import training_arguments

sys.path.insert(0, str(Path(__file__).parent))
from masked_step import StepTimer, random_examples

RESULTS = Path(__file__).parent / "results" / "memory.json"
PARTS = ["optimizer", "attribution", "mask_files", "selection"]
SHAPE = {"vocab": 8192, "hidden": 768, "intermediate": 2048, "layers": 12}


def model_100m(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=SHAPE["vocab"], hidden_size=SHAPE["hidden"],
        intermediate_size=SHAPE["intermediate"], num_hidden_layers=SHAPE["layers"],
        num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=256,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def random_mask(model, ratio: float) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        n: torch.rand(p.shape, generator=generator) < ratio for n, p in model.named_parameters()
    }


def optimizer_run(state: str, steps: int, scratch: str) -> tuple[list[float], int]:
    """(step seconds after the first, optimizer-state bytes) of one masked GradDiff run."""
    model = model_100m()
    mask = random_mask(model, 0.2)
    data = PairedDataset(
        random_examples(steps, SHAPE["vocab"], 16, 48, 1),
        random_examples(steps, SHAPE["vocab"], 16, 48, 2),
    )
    run = UnlearnConfig(
        model="-", forget="-", retain="-", out="-", max_steps=steps, batch_size=1,
        gradient_accumulation_steps=1, learning_rate=1e-4, weight_decay=0.01, warmup=0,
        progress=False,
    )  # fmt: skip
    timer = StepTimer()
    trainer = MaskedUnlearningTrainer(
        model=model, args=training_arguments(run, scratch), train_dataset=data,
        data_collator=PairCollator(0), objective=METHODS["graddiff"](), mask=mask,
        optimizer_state=state, callbacks=[timer],
    )  # fmt: skip
    trainer.train()
    inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    state_bytes = sum(
        t.numel() * t.element_size()
        for s in inner.state.values()
        for t in s.values()
        if isinstance(t, torch.Tensor) and t.dim() > 0
    )
    return timer.times[1:], state_bytes


def optimizer_figures(steps: int, repeats: int) -> dict:
    times: dict[str, list[float]] = {"full": [], "selected": []}
    sizes = {}
    with tempfile.TemporaryDirectory() as scratch:
        for rep in range(repeats):
            for state in ("full", "selected") if rep % 2 == 0 else ("selected", "full"):
                seconds, sizes[state] = optimizer_run(state, steps, scratch)
                times[state] += seconds
    full, sel = statistics.median(times["full"]), statistics.median(times["selected"])
    return {
        "ratio": 0.2,
        "state_bytes": sizes,
        "state_selected_over_full": round(sizes["selected"] / sizes["full"], 4),
        "step_s_median": {"full": round(full, 4), "selected": round(sel, 4)},
        "step_selected_over_full": round(sel / full, 4),
        "timed_steps_each": len(times["full"]),
    }


def attribution_child(mode: str) -> None:
    """Run in a child: peak RSS above the loaded model of attribution + mask selection."""
    model = model_100m().eval()
    examples = random_examples(8, SHAPE["vocab"], 16, 48, 3)
    texts = [" ".join(str(i) for i in e["input_ids"]) for e in examples]
    tokenizer = _IdTokenizer()
    config = AttributionConfig(ratio=[0.2], batch_size=4, max_length=64)
    base = reset_peak_rss()
    result = attribute(model, tokenizer, texts, texts, config, progress=False)
    passes = rss_peak() - base
    reset_peak_rss()
    scores = result.scores()
    if mode == "materialised":
        scores = {name: scores[name] for name in scores}  # as before: a dict of full tensors
    select_mask(scores, 0.2)
    selection = rss_peak() - base
    print(json.dumps({"peak_above_model": max(passes, selection), "selection": selection}))


class _IdTokenizer:
    """Whitespace-separated integers → ids (a stand-in tokenizer for random data)."""

    pad_token_id = 0
    eos_token_id = 2
    bos_token_id = 1

    def __call__(self, text, add_special_tokens=False, **_):
        return {"input_ids": [int(t) for t in text.split()]}


def attribution_figures() -> dict:
    peaks, selection = {}, {}
    env = os.environ | {"MALLOC_MMAP_THRESHOLD_": "65536"}  # freed blocks go back to the OS
    for mode in ("materialised", "streamed"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode],
            capture_output=True, text=True, check=True, env=env,
        )  # fmt: skip
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[mode], selection[mode] = figures["peak_above_model"], figures["selection"]
    params = sum(p.numel() for p in model_100m().parameters())
    return {
        "peak_rss_above_model_bytes": peaks,
        "selection_phase_peak_above_model_bytes": selection,
        "fp32_model_copy_bytes": 4 * params,
        "bool_mask_bytes": params,
        "saved_bytes": peaks["materialised"] - peaks["streamed"],
    }


def mask_file_figures(model) -> dict:
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ratio in (0.01, 0.2, 0.5):
            mask = random_mask(model, ratio)
            old, new = Path(tmp) / "old.safetensors", Path(tmp) / "new.safetensors"
            save_file({n: s.to(torch.uint8) for n, s in mask.items()}, old)
            save_mask(mask, new)
            load_s = {}
            for _ in range(2):  # alternate, keep the faster (page cache warm for both)
                for kind, path in (("old", old), ("packed", new)):
                    start = time.perf_counter()
                    load_mask(path)
                    took = time.perf_counter() - start
                    load_s[kind] = min(load_s.get(kind, took), took)
            figures[f"ratio_{ratio}"] = {
                "bytes": {"old": old.stat().st_size, "packed": new.stat().st_size},
                "size_packed_over_old": round(new.stat().st_size / old.stat().st_size, 4),
                "load_s": {k: round(v, 4) for k, v in load_s.items()},
            }
    return figures


def selection_figures(sizes: list[int]) -> dict:
    figures = {}
    for n in sizes:
        chunk = 50_000_000
        tensors = [torch.rand(min(chunk, n - i)) for i in range(0, n, chunk)]
        start = time.perf_counter()
        kth_largest(tensors, n // 5)
        took = time.perf_counter() - start
        figures[str(n)] = {"seconds": round(took, 3), "ns_per_score": round(took / n * 1e9, 3)}
        del tensors
    return figures


def llama7b_mask_figures() -> dict:
    """Synthetic Llama-2-7B mask (ρ = 0.2, random): save packed from a lazy mapping that draws
    each tensor on access, load back lazily, compare each tensor; peak RSS increase."""
    shape = load_shape("llama2-7b")
    sizes = shape.tensor_sizes()
    base = reset_peak_rss()

    class Synthetic(dict):
        def items(self):
            for i, n in enumerate(sizes):
                yield f"t{i}", torch.rand(n, generator=torch.Generator().manual_seed(i)) < 0.2

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mask7b.safetensors"
        start = time.perf_counter()
        save_mask(Synthetic(), path)
        saved = time.perf_counter() - start
        handle = open_mask(path)
        start = time.perf_counter()
        for (name, expected), n in zip(Synthetic().items(), sizes, strict=True):
            assert handle.shapes[name] == (n,)
            assert torch.equal(handle[name], expected), name
        checked = time.perf_counter() - start
        size = path.stat().st_size
    return {
        "weights": sum(sizes),
        "file_bytes": size,
        "first_format_bytes": sum(sizes),
        "peak_rss_increase_bytes": rss_peak() - base,
        "largest_tensor_weights": max(sizes),
        "save_s": round(saved, 1),
        "load_and_compare_s": round(checked, 1),
    }


def reset_peak_rss() -> int:
    Path("/proc/self/clear_refs").write_text("5")
    return proc_status_bytes("VmRSS")


def rss_peak() -> int:
    return proc_status_bytes("VmHWM")


def proc_status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=["materialised", "streamed"])
    parser.add_argument("--large", action="store_true", help="1B-score selection, 7B mask")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--parts", nargs="+", choices=[*PARTS, "llama2_7b_mask"],
        help="figures to (re)measure, the others are kept from the results file (default: "
        "all; the 7B mask only with --large)",
    )  # fmt: skip
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.child:
        attribution_child(args.child)
        return
    model = model_100m()
    figures = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    figures |= {
        "model": SHAPE | {"parameters": sum(p.numel() for p in model.parameters())},
        "torch_threads": torch.get_num_threads(),
    }
    sizes = [10_000_000, 100_000_000] + ([1_000_000_000] if args.large else [])
    measure = {
        "optimizer": lambda: optimizer_figures(args.steps, args.repeats),
        "attribution": attribution_figures,
        "mask_files": lambda: mask_file_figures(model),
        "selection": lambda: selection_figures(sizes),
        "llama2_7b_mask": llama7b_mask_figures,
    }
    for part in args.parts or [*PARTS, *(["llama2_7b_mask"] if args.large else [])]:
        figures[part] = measure[part]()
    write_json(RESULTS, figures)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
