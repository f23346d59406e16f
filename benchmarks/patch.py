"""Patch size against model size, and apply / revert time, on the playground and on a
Llama-2-7B-shaped model.

- **Playground** (the built playground's target, or ``--model``/``--data``): WAGLE masks at each
  ρ from one attribution pass, a short masked NPO run per ρ (and a dense one) with the
  playground recipe, then the patch of each run (``create_patch`` from the model in memory).
  Figures: changed weights / mask size, patch bytes / model bytes, apply and revert seconds.
- **7B-shaped** (``plan.PRESETS["llama2-7b"]``, bf16, 6.74B weights): never materialised whole.
  For each distinct tensor shape one random bf16 tensor is built, a random mask at ρ selects
  entries, every selected entry is changed (its lowest bit flipped: the upper bound, where a
  real run changes a subset of its mask), and the patch of that tensor is written, applied and
  reverted for real, in memory (``apply_patch``) and on files (``apply_patch_files``, which
  copies the file). Totals multiply each shape's figures by how often the model has it; the
  header (the base's signature) is measured on a patch of the full signature. Peak memory is a
  few GB (the embedding matrix at ρ 0.95), on a machine shared with others.

Seconds per GB are of the model's bytes touched (the whole model for a totalled figure).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/patch.py [--ratios 0.05 0.2 0.5 0.95]
        [--skip-playground] [--skip-7b] [--steps 40]

Prints the figures and writes benchmarks/results/patch.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from machine import machine_note  # benchmarks/machine.py (this script's folder)
from wagle import config as cfg
from wagle.patches import (
    apply_patch,
    apply_patch_files,
    create_patch,
    model_tensors,
    revert_patch,
    revert_patch_files,
)
from wagle.patches.bits import bits
from wagle.patches.files import PatchWriter
from wagle.plan import PRESETS, Shape

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "patch.json"
GB = 1e9


def llama_tensors(shape: Shape) -> dict[str, tuple[int, ...]]:
    """Every parameter of a Llama of ``shape``: name → tensor shape (HF names)."""
    h, i, q = shape.hidden, shape.intermediate, shape.heads * shape.head_dim
    kv = shape.kv_heads * shape.head_dim
    names = {"model.embed_tokens.weight": (shape.vocab, h), "model.norm.weight": (h,)}
    for layer in range(shape.layers):
        p = f"model.layers.{layer}."
        names |= {
            p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, q),
            p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
            p + "mlp.down_proj.weight": (h, i), p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
        }  # fmt: skip
    if not shape.tied:
        names["lm_head.weight"] = (shape.vocab, h)
    return names


class OneTensor(torch.nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def one_shape(dims: tuple[int, ...], ratio: float, scratch: Path, seed: int) -> dict:
    """Patch bytes and apply/revert seconds of one random bf16 tensor with ``ratio`` of its
    entries changed (memory and files)."""
    generator = torch.Generator().manual_seed(seed)
    base = (torch.randn(dims, generator=generator) * 0.02).to(torch.bfloat16)
    selected = torch.rand(dims, generator=generator, dtype=torch.float16) < ratio
    new = base.clone()
    bits(new)[selected.reshape(-1)] ^= 1  # another bit pattern at every selected entry
    del selected
    patch = create_patch({"weight": base}, {"weight": new}, scratch / "p.safetensors")
    del new
    module = OneTensor(base)
    figures = {
        "entries": patch.total_entries,
        "data_bytes": patch.nbytes.get("weight", 0),
        "model_bytes": base.numel() * 2,
        "apply_memory_s": timed(apply_patch, module, patch),
        "revert_memory_s": timed(revert_patch, module, patch),
    }
    directory = scratch / "model"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text("{}")
    from safetensors.torch import save_file

    save_file({"weight": base}, directory / "model.safetensors")
    figures["apply_files_s"] = timed(apply_patch_files, directory, patch, scratch / "applied")
    figures["revert_files_s"] = timed(
        revert_patch_files, scratch / "applied", patch, scratch / "back"
    )
    for path in (
        directory / "model.safetensors",
        scratch / "applied",
        scratch / "back",
        patch.path,
    ):
        _remove(path)
    return figures


def header_bytes(names: dict[str, tuple[int, ...]], scratch: Path) -> int:
    """The bytes beyond the entries' data of a patch over this signature, one entry per tensor
    (the header: the base's signature, the hashes, each tensor's three records)."""
    signature = {n: (dims, "BF16") for n, dims in names.items()}
    one = torch.zeros(1, dtype=torch.bfloat16)
    with PatchWriter(scratch / "h.safetensors", signature) as writer:
        for name in sorted(names):
            writer.add(name, torch.zeros(1, dtype=torch.int32), one, one + 1)
        patch = writer.finish({"method": "npo", "ratio": 0.5, "recipe_hash": "0" * 12})
    size = patch.file_bytes - sum(patch.nbytes.values())
    patch.path.unlink()
    return size


def seven_b(ratios: list[float]) -> dict:
    shape = Shape.from_config(PRESETS["llama2-7b"])
    names = llama_tensors(shape)
    counts = Counter(names.values())
    model_bytes = 2 * shape.parameters
    assert sum(math.prod(d) * n for d, n in counts.items()) == shape.parameters
    results: dict = {"parameters": shape.parameters, "model_bytes": model_bytes, "shapes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        header = header_bytes(names, Path(tmp))
        results["header_bytes"] = header
        for ratio in ratios:
            totals = Counter()
            for seed, (dims, count) in enumerate(counts.items()):
                figures = one_shape(dims, ratio, Path(tmp), seed)
                results["shapes"].setdefault(str(ratio), {})[str(dims)] = figures | {"count": count}
                for key, value in figures.items():
                    totals[key] += value * count
                print(f"  7B ρ={ratio} {dims} ×{count}: {figures}", flush=True)
            patch_bytes = totals["data_bytes"] + header
            row = {
                "changed_fraction": totals["entries"] / shape.parameters,
                "patch_bytes": patch_bytes,
                "patch_over_model": patch_bytes / model_bytes,
            }
            for key in ("apply_memory_s", "revert_memory_s", "apply_files_s", "revert_files_s"):
                row[key] = totals[key]
                row[key.replace("_s", "_s_per_gb")] = totals[key] / (model_bytes / GB)
            results[str(ratio)] = row
            print(f"7B ρ={ratio}: {json.dumps(_rounded(row))}", flush=True)
    return results


def playground(ratios: list[float], steps: int, model_path: str, data: str) -> dict:
    from wagle.attribution import AttributionConfig, attribute
    from wagle.data.load import load_qa
    from wagle.models import load_pretrained
    from wagle.unlearning import UnlearnConfig, method_options, unlearn_model
    from wagle.unlearning.config import split_recipe

    model, tokenizer = load_pretrained(model_path, device=None)
    forget, retain = load_qa(data, "forget10"), load_qa(data, "retain90")
    run, options = split_recipe(cfg.load_yaml(ROOT / "configs" / "playground_npo.yaml"))
    config = cfg.build(UnlearnConfig, run, {"max_steps": steps, "progress": False})
    options = method_options("npo", options)
    weights = sum(t.numel() for t in model_tensors(model).values())
    model_bytes = sum(t.numel() * t.element_size() for t in model_tensors(model).values())
    results: dict = {"model": model_path, "weights": weights, "model_bytes": model_bytes}
    results |= {"steps": steps, "recipe": "configs/playground_npo.yaml (max_steps set)"}
    start = time.perf_counter()
    attribution = attribute(model, tokenizer, forget, retain, AttributionConfig(), progress=False)
    scores = attribution.scores()
    results["attribution_s"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(Path(tmp) / "base")
        for ratio in [*ratios, None]:
            mask = attribution.select(scores, ratio) if ratio is not None else None
            unlearned = unlearn_model(
                copy.deepcopy(model), tokenizer, forget, retain, config, options, mask
            ).model
            path = Path(tmp) / "p.safetensors"
            patch = create_patch(model_tensors(model), model_tensors(unlearned), path)
            selected = sum(int(m.sum()) for m in mask.values()) if mask else weights
            copy_of_base = copy.deepcopy(model)
            row = {
                "selected": selected,
                "entries": patch.total_entries,
                "changed_over_selected": patch.total_entries / selected,
                "patch_bytes": patch.file_bytes,
                "patch_over_model": patch.file_bytes / model_bytes,
                "apply_memory_s": timed(apply_patch, copy_of_base, patch),
                "revert_memory_s": timed(revert_patch, copy_of_base, patch),
                "apply_files_s": timed(
                    apply_patch_files, Path(tmp) / "base", patch, Path(tmp) / "a"
                ),
                "revert_files_s": timed(
                    revert_patch_files, Path(tmp) / "a", patch, Path(tmp) / "b"
                ),
            }
            for key in ("apply_memory_s", "revert_memory_s", "apply_files_s", "revert_files_s"):
                row[key.replace("_s", "_s_per_gb")] = row[key] / (model_bytes / GB)
            for path in (Path(tmp) / "a", Path(tmp) / "b", patch.path):
                _remove(path)
            results["dense" if ratio is None else str(ratio)] = row
            print(f"playground ρ={ratio or 'dense'}: {json.dumps(_rounded(row))}", flush=True)
    return results


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _rounded(row: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.05, 0.2, 0.5, 0.95])
    parser.add_argument("--steps", type=int, default=40, help="NPO steps per playground run")
    parser.add_argument("--model", help="playground target (default: the built playground's)")
    parser.add_argument("--data", help="playground data directory (default: the built one's)")
    parser.add_argument("--skip-playground", action="store_true")
    parser.add_argument("--skip-7b", action="store_true")
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    figures = previous | {
        "machine": f"{machine_note()}; {torch.get_num_threads()} torch thread (compare "
        "ratios, not absolute seconds)",
        "ratios": args.ratios,
    }
    if not args.skip_playground:
        from wagle.playground import PlaygroundConfig, load_info

        info = load_info(PlaygroundConfig()) if not (args.model and args.data) else {}
        model, data = args.model or info["target"], args.data or info["data"]
        figures["playground"] = playground(args.ratios, args.steps, model, data)
        home = str(Path.home())
        figures["playground"]["model"] = figures["playground"]["model"].replace(home, "~")
    if not args.skip_7b:
        figures["llama2_7b_bf16"] = seven_b(args.ratios)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
