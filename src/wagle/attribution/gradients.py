"""The statistics every score is computed from: one pass over the forget data, one over retain.

Gradient convention (DESIGN.md §1.1): the loss of one sample is its **mean** NLL over its
labelled tokens (answer tokens of a QA sample, every token of a text); gradients are **summed**
over samples, ``g = Σ_i ∇ℓ_i``. That is the published convention (γ = 1e-6 on summed
gradients ≡ γ = 1e-6 / N on mean gradients). Neither batch size nor padding changes ``g``.
Each gradient is added to the sums by a post-accumulate hook and then freed, so no second
full-size ``.grad`` ever exists. The sums are fp32 on the model's device by default
(``SUM_PLACES``: in host memory, or in the model's dtype, where memory is short).

Several processes (``torchrun`` / ``accelerate launch``): each process takes every
world-th sample (rank r: samples r, r + W, ...; none dropped, none twice), and the sums are
all-reduced, so every process ends with the statistics of one process over all the data
(to fp32 rounding: the order of the additions differs).

Sharded model (FSDP2, DTensor parameters): the sums are chunks shaped like each process's
chunk of the parameter, and no all-reduce is needed: FSDP2 reduce-scatters each backward's
gradient, averaged over the W processes, so each chunk is scaled by W as it is added. Every
forward and backward is a collective there, so all processes run the same number of batches:
a process whose share is used up runs a batch without labels (zero gradient, left out of the
input norms). The Fisher diagonal needs each sample's own gradient, which the reduce-scatter
would add to the other processes' samples: its pass takes one sample per step over all
processes together (the others run a label-free batch), at the pace of one process.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from wagle.attribution.schedule import Examples, Step, schedule
from wagle.data.collate import collate
from wagle.sequence import sequence_nll
from wagle.sharding import is_sharded, local, reshard

# What a score may need; each score method declares a subset (see scores.py).
FORGET_GRAD = "forget_grad"
RETAIN_GRAD = "retain_grad"
RETAIN_FISHER = "retain_fisher"
INPUT_NORMS = "input_norms"

# Where the gradient sums live: (device: None = the model's, dtype: None = the model's)
SUM_PLACES: dict[str, tuple[str | None, torch.dtype | None]] = {
    "float32": (None, torch.float32),
    "float32-cpu": ("cpu", torch.float32),
    "model-dtype": (None, None),
}


@dataclass
class Statistics:
    """fp32 per-parameter statistics, keyed by parameter name; ``None`` when not collected.

    forget_grad / retain_grad: ``Σ_i ∇ℓ_i`` over the forget / retain samples, shaped like θ.
    retain_fisher: ``Σ_i (∇ℓ_i)²`` over the retain samples, the empirical Fisher diagonal of
        the retain loss from per-sample gradients (the retain pass then runs one sample per
        batch, whatever ``batch_size``, so the value does not depend on it).
    input_sq_norms: for the weight of each ``nn.Linear`` scored, ``Σ_tokens x_j²`` [in_features]
        over the non-padding forget tokens of its input x (Wanda's ``‖X_j‖₂²``).
    """

    n_forget: int
    n_retain: int
    forget_grad: dict[str, torch.Tensor] | None = None
    retain_grad: dict[str, torch.Tensor] | None = None
    retain_fisher: dict[str, torch.Tensor] | None = None
    input_sq_norms: dict[str, torch.Tensor] | None = None


def collect_statistics(
    model: torch.nn.Module,
    forget: Examples,
    retain: Examples,
    names: list[str],
    needs: frozenset[str],
    *,
    batch_size: int,
    pad_token_id: int,
    progress: bool = True,
    sums: str = "float32",
    checkpointing: bool = False,
) -> Statistics:
    """What ``needs`` asks for, for parameters ``names``, in at most one pass over each set.

    ``forget`` / ``retain`` are encoded examples (``input_ids``, ``labels``). The model is put
    in eval mode (no dropout) for the passes and returned to its previous mode, its
    ``requires_grad`` flags restored and its ``.grad`` left empty. ``sums``: a ``SUM_PLACES``
    name. Under several processes each takes its share of the samples and the sums are
    all-reduced. ``checkpointing``: recompute each decoder layer in backward (HF gradient
    checkpointing) instead of keeping its activations.
    """
    wanted = set(names)
    params = {n: p for n, p in model.named_parameters() if n in wanted}
    rank, world = _rank_and_world()
    sharded = any(is_sharded(p) for p in model.parameters())
    spread = functools.partial(schedule, rank=rank, world=world, sharded=sharded)
    run = functools.partial(
        _pass, model, params, pad_token_id=pad_token_id, progress=progress,
        place=SUM_PLACES[sums], scale=world if sharded else 1,
    )  # fmt: skip
    stats = Statistics(n_forget=len(forget), n_retain=len(retain) if RETAIN_GRAD in needs else 0)
    grad_params = params if needs - {INPUT_NORMS} else {}
    with _attribution_mode(model, grad_params), _checkpointing(model, checkpointing):
        if needs & {FORGET_GRAD, INPUT_NORMS}:
            with _input_norm_hooks(model, params if INPUT_NORMS in needs else {}) as norms:
                grads, _ = run(
                    spread(forget, batch_size), "forget", backward=FORGET_GRAD in needs, norms=norms
                )
            stats.forget_grad = grads if FORGET_GRAD in needs else None
            stats.input_sq_norms = norms.sums if INPUT_NORMS in needs else None
        if RETAIN_GRAD in needs:
            fisher = RETAIN_FISHER in needs  # per-sample gradients: one sample per batch
            steps = spread(retain, 1, per_sample=True) if fisher else spread(retain, batch_size)
            stats.retain_grad, stats.retain_fisher = run(steps, "retain", fisher=fisher)
    if sharded:  # a pass without backward (Wanda's) leaves some units whole
        reshard(model)
    if world > 1:  # chunks of sharded parameters are complete; whole tensors are summed
        plain = {n for n, p in params.items() if not is_sharded(p)}
        for table in (stats.forget_grad, stats.retain_grad, stats.retain_fisher):
            _all_reduce_sum({n: t for n, t in (table or {}).items() if n in plain})
        _all_reduce_sum(stats.input_sq_norms or {})
    return stats


def _rank_and_world() -> tuple[int, int]:
    """(rank, world size); a ``torchrun`` / ``accelerate launch`` group is joined if needed."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        from accelerate import PartialState

        PartialState()  # initialises the process group from the launcher's environment
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce_sum(table: dict[str, torch.Tensor]) -> None:
    """Sum every tensor over the processes in place (in fp32, on the backend's device)."""
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    for name in sorted(table):  # the same order on every process
        buffer = table[name].to(device, torch.float32)
        dist.all_reduce(buffer)
        table[name].copy_(buffer)


def _pass(
    model: torch.nn.Module,
    params: dict[str, torch.nn.Parameter],
    steps: list[Step],
    name: str,
    *,
    backward: bool = True,
    fisher: bool = False,
    norms: _InputNorms | None = None,
    pad_token_id: int,
    progress: bool,
    place: tuple[str | None, torch.dtype | None],
    scale: int = 1,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """One pass: forward each batch; backward its summed per-sample mean NLL if asked.

    Returns the gradient sums (empty without ``backward``) and, with ``fisher``, the sums of
    squared batch gradients (per-sample when batches hold one sample). Sums of a sharded
    parameter are chunks; ``scale`` multiplies each gradient chunk first (FSDP2 averages).
    """
    device, dtype = place
    grads = {
        n: torch.zeros(local(p).shape, dtype=dtype or p.dtype, device=device or local(p).device)
        for n, p in params.items()
    }
    grads = grads if backward else {}
    squares = {n: torch.zeros_like(g) for n, g in grads.items()} if fisher else None
    device = local(next(model.parameters())).device
    with _accumulate_into(params, grads, squares, scale), torch.set_grad_enabled(backward):
        for examples, counts in tqdm(steps, desc=f"{name} pass", disable=not progress):
            batch = {k: v.to(device) for k, v in collate(examples, pad_token_id).items()}
            if norms is not None:
                mask = batch["attention_mask"]
                norms.attention_mask = mask if counts else torch.zeros_like(mask)
            nll_sum, n_tokens = sequence_nll(model, batch)
            if backward:
                (nll_sum / n_tokens.clamp(min=1)).sum().backward()
    return grads, squares


@contextlib.contextmanager
def _accumulate_into(
    params: dict[str, torch.nn.Parameter],
    grads: dict[str, torch.Tensor],
    squares: dict[str, torch.Tensor] | None,
    scale: int = 1,
) -> Iterator[None]:
    """Hooks that add each batch gradient (and its square) to fp32 sums, then free ``.grad``
    (of a sharded parameter: its chunk, times ``scale``)."""

    def hook(name: str, param: torch.nn.Parameter) -> None:
        g = local(param.grad).to(grads[name].device, torch.float32)
        if scale != 1 and is_sharded(param.grad):
            g = g * scale
        grads[name].add_(g)
        if squares is not None:
            squares[name].addcmul_(g, g)
        param.grad = None

    handles = [
        p.register_post_accumulate_grad_hook(lambda p, n=n: hook(n, p))
        for n, p in params.items()
        if n in grads
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class _InputNorms:
    """Sums of squared inputs per ``nn.Linear`` weight name, filled by forward hooks."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.attention_mask: torch.Tensor | None = None  # [B, T] of the batch being run

    def add(self, name: str, x: torch.Tensor, attention_mask: torch.Tensor) -> None:
        # x: [B, T, in]; attention_mask: [B, T] (0 on padding) → Σ over real tokens of x² [in]
        x = x.detach().reshape(-1, x.shape[-1]).float()
        weights = attention_mask.reshape(-1).to(x.dtype)
        self.sums[name] += weights @ x.square()


@contextlib.contextmanager
def _input_norm_hooks(
    model: torch.nn.Module, params: dict[str, torch.nn.Parameter]
) -> Iterator[_InputNorms]:
    """Forward hooks on each ``nn.Linear`` whose weight is in ``params`` (by identity)."""
    norms = _InputNorms()
    name_of = {id(p): n for n, p in params.items()}

    def hook_for(name: str) -> Callable:
        return lambda _module, inputs, _output: norms.add(name, inputs[0], norms.attention_mask)

    linears = [
        m for m in model.modules() if isinstance(m, torch.nn.Linear) and id(m.weight) in name_of
    ]
    for module in linears:  # zeros first: a process with no sample still has every entry
        weight = module.weight
        norms.sums[name_of[id(weight)]] = torch.zeros(weight.shape[1], device=weight.device)
    handles = [
        module.register_forward_hook(hook_for(name_of[id(module.weight)])) for module in linears
    ]
    try:
        yield norms
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _checkpointing(model: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """HF gradient checkpointing for the passes, then as it was.

    HF checkpoints a decoder layer only when that layer is in training mode: the layers alone
    are flagged as training (``module.training``, not ``train()``), so dropout stays off.
    """
    if not enabled:
        yield
        return
    from transformers.modeling_layers import GradientCheckpointingLayer

    was_enabled = model.is_activation_checkpointing
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    for layer in layers:
        layer.training = True
    try:
        yield
    finally:
        for layer in layers:
            layer.training = model.training
        if not was_enabled:
            model.activation_checkpointing_disable()


@contextlib.contextmanager
def _attribution_mode(
    model: torch.nn.Module, params: dict[str, torch.nn.Parameter]
) -> Iterator[None]:
    """Eval mode; gradients only for ``params``; everything restored afterwards."""
    was_training = model.training
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    model.eval()
    for name, p in model.named_parameters():
        p.requires_grad_(name in params)
        p.grad = None
    try:
        yield
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])
            p.grad = None
        model.train(was_training)
