"""A memory model: expected peak bytes per device for attribution and unlearning, from a
model's config alone (a ``config.json``, a model directory or a preset name; nothing is
loaded, no torch needed).

Components (N parameters, w bytes per weight: 2 for bf16, 4 for fp32; ρ the mask ratio):

attribution (one pass at a time, scores streamed, masks on CPU):
    weights N·w · gradient sums 2·N·4 (fp32; 0 on the device with ``--gradient-sums
    float32-cpu``) · one tensor's scores and temporaries 4·4·n_max · activations of one batch
    · the loss's logits
unlearning (forget + retain batch per step, both graphs alive until backward), with T the
trainable parameters (all but RMU's frozen upper layers):
    weights N·w · gradients T·w · DDP buckets T·w (2+ devices: DDP copies gradients into its
    buckets) · bool mask N · AdamW state: dense 2·T·w (torch keeps moments in the weights'
    dtype), selective ρ·T·(12 + 4 if w ≠ 4) (int32 indices, fp32 moments, fp32 masters for
    bf16 weights)
    · autocast weight cache: with bf16 autocast on fp32 weights (``bf16: true``), autocast
    keeps a bf16 copy of every trainable linear weight from its first use in a forward pass
    to the end of the step's autocast region, 2 bytes per linear weight entry, alive with
    the gradients of the step's earlier micro-batches; with gradient checkpointing the
    trainer turns the cache off and only the output head's copy, which autograd saves
    outside the checkpointed layers, remains
    · frozen reference copies of the whole model, N·w each: NPO's live reference, the KL
    retain term's original model, RMU's original model (``Options.frozen_copies``)
    · activations of 2 batches · logits
evaluation while unlearning (a trajectory point; the step's gradients are freed by then):
    weights, optimizer state, mask, reference copies, the autocast cache of one forward pass
    · the likelihood pass's logits: per token of an evaluation batch, V entries as logits
    (fp32; bf16 first under autocast) and cross-entropy's fp32 log-softmax
    (``evaluation_memory``)

Activations per token, calibrated on HF Llama (sdpa attention, no s² term) by counting the
bytes autograd saves: a decoder layer keeps (10·h + 4·i)·a bytes (+4·h in bf16, the RMSNorm's
fp32 copies), a the activation bytes; with gradient checkpointing it keeps its input h·a and
one layer is recomputed at a time; the loss keeps fp32 log-probabilities and, in backward,
their gradient: V·(4 + 4 + a); embedding and final norm ≈ 3·h·4. Tests compare these to
measured bytes on small models (exact for weights, gradients and optimizer state; within 15%
for activations).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wagle.errors import WagleError

GiB = 2**30
DTYPE_BYTES = {"bfloat16": 2, "float32": 4}

_LLAMA2_7B = {
    "model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
    "tie_word_embeddings": False,
}  # fmt: skip
PRESETS: dict[str, dict[str, Any]] = {
    "llama2-7b": _LLAMA2_7B,
    "llama2-13b": _LLAMA2_7B
    | {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40}
    | {"num_attention_heads": 40, "num_key_value_heads": 40},
    "mistral-7b": _LLAMA2_7B
    | {"model_type": "mistral", "intermediate_size": 14336, "num_key_value_heads": 8},
    "llama3-8b": _LLAMA2_7B
    | {"vocab_size": 128256, "intermediate_size": 14336, "num_key_value_heads": 8},
    "llama2-70b": _LLAMA2_7B
    | {"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80}
    | {"num_attention_heads": 64, "num_key_value_heads": 8},
}
SUPPORTED = ("llama", "mistral", "qwen2")


@dataclass(frozen=True)
class Shape:
    """The sizes of a Llama-style decoder that memory depends on."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool
    qkv_bias: bool

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Shape:
        kind = config.get("model_type", "llama")
        if kind not in SUPPORTED:
            raise WagleError(f"wagle plan models {', '.join(SUPPORTED)}; got model_type {kind!r}")
        heads = config["num_attention_heads"]
        return cls(
            vocab=config["vocab_size"],
            hidden=config["hidden_size"],
            intermediate=config["intermediate_size"],
            layers=config["num_hidden_layers"],
            heads=heads,
            kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            tied=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=kind == "qwen2" or bool(config.get("attention_bias", False)),
        )

    def linear_entries(self) -> int:
        """Entries of every linear layer's weight and bias (the projections and the output
        head, which a tied embedding feeds too): what bf16 autocast casts and caches."""
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        layer = h * q + 2 * h * kv + q * h + 3 * h * self.intermediate
        layer += q + 2 * kv if self.qkv_bias else 0
        return layer * self.layers + self.vocab * h

    def tensor_sizes(self) -> list[int]:
        """Entries of every parameter tensor (tied embeddings counted once)."""
        return [rows * columns for rows, columns in self.tensor_shapes()]

    def tensor_shapes(self) -> list[tuple[int, int]]:
        """(rows, entries per row) of every parameter tensor, in model order; a vector is
        (n, 1). Rows are dim 0, the dim FSDP2 shards."""
        head = [] if self.tied else [(self.vocab, self.hidden)]
        return [
            (self.vocab, self.hidden),
            *self.layer_shapes() * self.layers,
            (self.hidden, 1),
            *head,
        ]

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(rows, entries per row) of one decoder layer's tensors."""
        h, i = self.hidden, self.intermediate
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        layer = [(q, h), (kv, h), (kv, h), (h, q), (i, h), (i, h), (h, i), (h, 1), (h, 1)]
        return layer + ([(q, 1), (kv, 1), (kv, 1)] if self.qkv_bias else [])

    @property
    def parameters(self) -> int:
        return sum(self.tensor_sizes())


def load_shape(source: str) -> Shape:
    """A preset name, a ``config.json`` or a model directory holding one."""
    if source in PRESETS:
        return Shape.from_config(PRESETS[source])
    path = Path(source)
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        raise WagleError(
            f"--model {source!r} is neither a preset ({', '.join(PRESETS)}) nor a config.json "
            "or a model directory"
        )
    try:
        return Shape.from_config(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError) as err:
        raise WagleError(f"{path} is not a usable model config: {err!r}") from None


def activation_bytes(shape: Shape, tokens: int, dtype: str, checkpointing: bool) -> int:
    """Peak bytes autograd holds for ``tokens`` tokens (batch × length) at backward's start."""
    a = DTYPE_BYTES[dtype]
    layer = (10 * shape.hidden + 4 * shape.intermediate) * a + (4 * shape.hidden if a == 2 else 0)
    kept = shape.hidden * a * shape.layers + layer if checkpointing else layer * shape.layers
    logits = shape.vocab * (4 + 4 + a)
    return tokens * (kept + logits + 3 * shape.hidden * 4)


def attribution_memory(
    shape: Shape,
    dtype: str,
    *,
    checkpointing: bool,
    batch_size: int,
    max_length: int,
    sums: str = "float32",
) -> dict[str, int]:
    """Bytes per device of ``wagle attribute`` (method wagle), by component; ``sums``:
    float32 (on the device) or float32-cpu (in host memory)."""
    n, w = shape.parameters, DTYPE_BYTES[dtype]
    return {
        "weights": n * w,
        "gradient_sums": 0 if sums == "float32-cpu" else 2 * n * 4,
        "scores_of_one_tensor": 4 * 4 * max(shape.tensor_sizes()),
        "activations": activation_bytes(shape, batch_size * max_length, dtype, checkpointing),
    }


def unlearning_memory(
    shape: Shape,
    ratio: float,
    dtype: str,
    *,
    state: str,
    devices: int,
    checkpointing: bool,
    batch_size: int,
    max_length: int,
    autocast: bool = False,
    reference_copies: int = 0,
    trainable: int | None = None,
) -> dict[str, int]:
    """Bytes per device of a ``wagle unlearn`` step with a mask of ratio ρ (``state``:
    full/selected); ``autocast``: bf16 autocast (``bf16: true``); ``reference_copies``: frozen
    copies of the model the method keeps; ``trainable``: trainable parameters (all if None)."""
    n, w = shape.parameters, DTYPE_BYTES[dtype]
    t = n if trainable is None else trainable
    k = min(t, math.floor(ratio * t + 0.5))  # as selection rounds it
    optimizer = 2 * t * w if state == "full" else k * (12 + (4 if w != 4 else 0))
    tokens = 2 * batch_size * max_length  # a forget and a retain batch
    compute = "bfloat16" if autocast else dtype
    return {
        "weights": n * w,
        "gradients": t * w,
        "ddp_buckets": t * w if devices > 1 else 0,
        "mask": n if ratio < 1 else 0,
        "optimizer_state": optimizer,
        "autocast_cache": autocast_cache_bytes(shape, dtype, autocast, checkpointing, t / n),
        "reference_copies": reference_copies * n * w,
        "activations": activation_bytes(shape, tokens, compute, checkpointing),
    }


def autocast_cache_bytes(
    shape: Shape, dtype: str, autocast: bool, checkpointing: bool, trainable: float = 1.0
) -> int:
    """The bf16 copies bf16 autocast keeps of fp32 linear weights that require gradients
    (a ``trainable`` fraction of them): 2 bytes an entry; with checkpointing (cache off) the
    output head's alone; none for bf16 weights."""
    if not autocast or dtype != "float32":
        return 0
    if checkpointing:
        return 2 * shape.vocab * shape.hidden if trainable == 1.0 else 0
    return 2 * round(shape.linear_entries() * trainable)


def evaluation_logits_bytes(shape: Shape, autocast: bool, tokens: int) -> int:
    """The peak of a trajectory point's likelihood pass beyond the model: per labelled (answer)
    token of a batch, the only positions that get logits, V logits in fp32 (after a bf16 copy
    under autocast) and cross-entropy's fp32 log-softmax of them."""
    per_entry = 2 * 4 + (2 if autocast else 0)
    return tokens * shape.vocab * per_entry


def evaluation_memory(
    step: dict[str, int], shape: Shape, *, autocast: bool, batch_size: int, max_length: int
) -> dict[str, int]:
    """Bytes per device while a trajectory point is measured, from the step's ``parts``: the
    gradients, DDP buckets and activations are gone, the evaluation's logits are there."""
    kept = ("weights", "mask", "optimizer_state", "autocast_cache", "reference_copies")
    parts = {k: step[k] for k in kept}
    # An answer may fill the whole length: the bound on the labelled tokens of a batch.
    return parts | {"logits": evaluation_logits_bytes(shape, autocast, batch_size * max_length)}


def plan_table(
    shape: Shape, ratios: list[float], devices: int, batch_size: int = 4, max_length: int = 512
) -> list[dict[str, Any]]:
    """One row per (stage, dtype, checkpointing, ratio, state): components and total in bytes.
    Attribution batches are twice the unlearning batch (its default: 8 against 4); its
    ``state`` says where the gradient sums live. fp32 unlearning rows come twice: without and
    with bf16 autocast (``autocast``: the 7B recipes' ``bf16: true``)."""
    rows = []
    for dtype in ("bfloat16", "float32"):
        for checkpointing in (False, True):
            common = {"dtype": dtype, "checkpointing": checkpointing, "devices": devices}
            for sums in ("float32", "float32-cpu"):
                parts = attribution_memory(
                    shape, dtype, checkpointing=checkpointing, batch_size=2 * batch_size,
                    max_length=max_length, sums=sums,
                )  # fmt: skip
                row = {"stage": "attribute", **common, "ratio": None, "state": f"sums {sums}"}
                rows.append(row | _sum(parts))
            for autocast, ratio, state in itertools.product(
                (False, True) if dtype == "float32" else (False,), ratios, ("full", "selected")
            ):
                parts = unlearning_memory(
                    shape, ratio, dtype, state=state, devices=devices,
                    checkpointing=checkpointing, batch_size=batch_size, max_length=max_length,
                    autocast=autocast,
                )  # fmt: skip
                row = {"stage": "unlearn", **common, "ratio": ratio, "state": state}
                rows.append(row | {"autocast": autocast} | _sum(parts))
    return rows


def _sum(parts: dict[str, int]) -> dict[str, Any]:
    return {"parts": parts, "total": sum(parts.values())}


def trainable_parameters(shape: Shape, layers: int | None) -> int:
    """Parameters a method trains that trains the embeddings and decoder layers
    0..``layers``-1 only, plus the final norm when those are all of them (RMU,
    ``methods.rmu.freeze_above``); every parameter when ``layers`` is None."""
    if layers is None:
        return shape.parameters
    sizes = shape.tensor_sizes()
    per_layer = (len(sizes) - 2 - (0 if shape.tied else 1)) // shape.layers
    layers = min(layers, shape.layers)
    norm = shape.hidden if layers == shape.layers else 0
    return sizes[0] + sum(sizes[1 : 1 + per_layer]) * layers + norm


def recipe_memory(
    shape: Shape, config: Any, options: Any, ratio: float, devices: int = 1, fsdp: int = 0
) -> dict:
    """Bytes per device of an unlearning recipe (an ``UnlearnConfig`` and its method's options)
    under a mask of ratio ρ (1: dense): ``{"step": parts, "evaluation": parts, "peak": bytes}``,
    the evaluation being a trajectory point at ``config.eval_batch_size``; ``fsdp`` > 0:
    sharded by FSDP2 over that many devices (``fsdp_parts`` of each)."""
    from wagle.unlearning.config import AUTO_MAX_DENSITY

    autocast = bool(config.bf16)
    selective = config.optimizer_state == "selected" or (
        config.optimizer_state == "auto" and ratio < AUTO_MAX_DENSITY
    )
    layers = getattr(options, "trained_layers", lambda n: None)(shape.layers)
    step = unlearning_memory(
        shape, ratio, config.dtype, state="selected" if selective else "full", devices=devices,
        checkpointing=config.gradient_checkpointing, batch_size=config.batch_size,
        max_length=config.max_length, autocast=autocast,
        reference_copies=getattr(options, "frozen_copies", lambda: 0)(),
        trainable=trainable_parameters(shape, layers),
    )  # fmt: skip
    evaluation = evaluation_memory(
        step, shape, autocast=autocast, batch_size=config.eval_batch_size,
        max_length=config.max_length,
    )  # fmt: skip
    if fsdp:
        step, evaluation = (fsdp_parts(p, shape, fsdp, config.dtype) for p in (step, evaluation))
    return {
        "step": step,
        "evaluation": evaluation,
        "peak": max(sum(step.values()), sum(evaluation.values())),
    }


# ---- FSDP2: weights, gradients and optimizer state sharded over the devices ----------------
#
# Per device, from one device's parts: every per-weight part (weights, gradients, mask,
# optimizer state, gradient sums, one tensor's scores) × S/N, with S the entries a device
# holds (each tensor's dim 0 in chunks of ceil(rows / W), padded: what FSDP2 stores); the
# selective state assumes the mask is as dense on every device as overall. No DDP buckets.
# Other parts (activations, logits) are per device as they are. Added, the whole tensors in
# flight (wagle loads through transformers' FSDP2 plan, one unit per decoder layer, the
# embedding and the LM head units of their own, each freed after forward):
#   gathered_weights    2 units: the one computing and the one prefetched, each at most the
#                       larger of a decoder layer and the embedding / head (V·h), weights' dtype
#   gathered_gradients  a unit's whole gradient and its reduce-scatter copy (2 units), same
#   (the final norm, kept whole, is negligible)

SHARDED_PARTS = (
    "weights", "gradients", "mask", "optimizer_state", "gradient_sums", "scores_of_one_tensor",
)  # fmt: skip


def sharded_elements(shape: Shape, devices: int) -> int:
    """Entries one device stores of the whole model under FSDP2 over ``devices``."""
    return sum(math.ceil(rows / devices) * columns for rows, columns in shape.tensor_shapes())


def fsdp_parts(parts: dict[str, int], shape: Shape, devices: int, dtype: str) -> dict[str, int]:
    """Bytes per device under FSDP2 over ``devices`` from one device's ``parts``."""
    w = DTYPE_BYTES[dtype]
    share = sharded_elements(shape, devices) / shape.parameters
    out = {k: math.ceil(v * share) if k in SHARDED_PARTS else v for k, v in parts.items()}
    out.pop("ddp_buckets", None)
    layer = sum(rows * columns for rows, columns in shape.layer_shapes())
    unit = max(layer, shape.vocab * shape.hidden)
    out["gathered_weights"] = out["gathered_gradients"] = 2 * unit * w
    return out


def fsdp_plan_table(
    shape: Shape, ratios: list[float], devices: int, batch_size: int = 4, max_length: int = 512
) -> list[dict[str, Any]]:
    """``plan_table``'s rows for FSDP2 over ``devices`` (bytes per device)."""
    rows = []
    for row in plan_table(shape, ratios, 1, batch_size, max_length):
        parts = fsdp_parts(row["parts"], shape, devices, row["dtype"])
        rows.append(row | {"devices": devices, "fsdp": True} | _sum(parts))
    return rows
