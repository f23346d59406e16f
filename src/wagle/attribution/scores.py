"""Score functions: one small function per method, registered by name in ``SCORES``.

Every score is ≥ 0 and larger means "more worth unlearning"; every one is computed per
parameter from θ and the collected ``Statistics`` (gradients summed over samples, see
gradients.py). A method declares which statistics it needs, so the passes over data run only
what it uses; it scores the parameters for which every statistic it needs was collected
(Wanda: the weights of linear layers), the others are never selected.

Scores stream: ``compute_scores`` returns a ``LazyScores`` mapping that computes one tensor's
scores when it is accessed, on the parameter's device, and keeps nothing. Selection reads each
tensor a few times (radix passes) instead of holding a full-size score copy: attribution's
peak above the model is the statistics plus one tensor's scores.

Sharded parameters (FSDP2): θ and the statistics are this process's chunk (the statistics are
collected as chunks), so a score is computed on the chunk; a score that needs the global view
(random numbers drawn for the whole tensor, Wanda's per-column norms) cuts its full-shaped
operand with ``x.local``. ``LazyScores.layouts`` tells selection where each chunk sits.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch

from wagle.attribution.gradients import (
    FORGET_GRAD,
    INPUT_NORMS,
    RETAIN_FISHER,
    RETAIN_GRAD,
    Statistics,
)
from wagle.errors import WagleError
from wagle.registry import lookup, register
from wagle.sharding import layout_of, local

Scores = Mapping[str, torch.Tensor]  # parameter name → fp32 scores shaped like the parameter


@dataclass(frozen=True)
class ScoreInputs:
    """What a score function sees for one parameter (fp32, shaped like θ unless noted)."""

    theta: torch.Tensor
    g_f: torch.Tensor | None  # Σ forget gradients
    g_r: torch.Tensor | None  # Σ retain gradients
    fisher: torch.Tensor | None  # Σ squared retain batch gradients
    input_sq_norm: torch.Tensor | None  # [in_features] Σ x_j² over forget tokens (linear only)
    gamma: float
    generator: torch.Generator  # CPU generator, seeded from (seed, parameter name)
    shape: tuple[int, ...]  # the parameter's (global) shape; θ's own when not sharded
    local: Callable[[torch.Tensor], torch.Tensor]  # full-shaped tensor → this process's chunk


@dataclass(frozen=True)
class ScoreMethod:
    fn: Callable[[ScoreInputs], torch.Tensor]
    needs: frozenset[str]
    granularity: str  # the selection the method is defined with
    uses_gamma: bool


SCORES: dict[str, ScoreMethod] = {}


def score(name: str, needs: tuple[str, ...] = (), granularity: str = "global") -> Callable:
    """Decorator: register ``fn(ScoreInputs) -> scores`` as score method ``name``."""

    def add(fn: Callable[[ScoreInputs], torch.Tensor]) -> Callable:
        uses_gamma = RETAIN_GRAD in needs
        register(SCORES, name)(ScoreMethod(fn, frozenset(needs), granularity, uses_gamma))
        return fn

    return add


@score("wagle", needs=(FORGET_GRAD, RETAIN_GRAD))
def wagle(x: ScoreInputs) -> torch.Tensor:
    """|(θ − g_r/γ) · g_f|: the implicit-gradient score with Hessian ≈ γ·I (DESIGN.md §1.1)."""
    return torch.div(x.g_r, -x.gamma).add_(x.theta).mul_(x.g_f).abs_()


@score("wagle-fisher", needs=(FORGET_GRAD, RETAIN_GRAD, RETAIN_FISHER))
def wagle_fisher(x: ScoreInputs) -> torch.Tensor:
    """|(θ − g_r/(F + γ)) · g_f| with F the retain empirical Fisher diagonal, γ its damping."""
    return torch.div(x.g_r, x.fisher + x.gamma).neg_().add_(x.theta).mul_(x.g_f).abs_()


@score("snip", needs=(FORGET_GRAD,))
def snip(x: ScoreInputs) -> torch.Tensor:
    """|θ · g_f|: the first-order loss change from removing the weight."""
    return (x.theta * x.g_f).abs_()


@score("gradient", needs=(FORGET_GRAD,))
def gradient(x: ScoreInputs) -> torch.Tensor:
    """|g_f|: SalUn's gradient saliency."""
    return x.g_f.abs()


@score("magnitude")
def magnitude(x: ScoreInputs) -> torch.Tensor:
    """|θ|."""
    return x.theta.abs()


@score("random")
def random(x: ScoreInputs) -> torch.Tensor:
    """Uniform in [0, 1), from a generator seeded by (seed, parameter name), drawn for the
    whole tensor (the same numbers however it is sharded)."""
    return x.local(torch.rand(x.shape, generator=x.generator)).to(x.theta.device)


@score("wanda", needs=(INPUT_NORMS,), granularity="row")
def wanda(x: ScoreInputs) -> torch.Tensor:
    """|W_ij| · ‖X_j‖₂ for linear weights [out, in]; ‖X_j‖ over the forget tokens."""
    return x.theta.abs() * x.local(x.input_sq_norm.sqrt().expand(x.shape))


def compute_scores(
    model: torch.nn.Module,
    stats: Statistics,
    method: str,
    names: list[str],
    *,
    gamma: float = 1e-6,
    seed: int = 0,
) -> LazyScores:
    """Scores of ``method`` for parameters ``names`` (those it can score), fp32, in model order."""
    spec = lookup(SCORES, method, "score method")
    wanted = set(names)
    params = {
        n: p
        for n, p in model.named_parameters()
        if n in wanted and all(n in (_table(stats, need) or {}) for need in spec.needs)
    }
    if not params:
        raise WagleError(f"score method {method!r} can score none of the eligible parameters")
    return LazyScores(spec, params, stats, gamma, seed)


class LazyScores(Mapping[str, torch.Tensor]):
    """Parameter name → fp32 scores, computed on access from θ and the statistics (not kept)."""

    def __init__(
        self,
        spec: ScoreMethod,
        params: dict[str, torch.nn.Parameter],
        stats: Statistics,
        gamma: float,
        seed: int,
    ) -> None:
        self.spec, self.params, self.stats, self.gamma, self.seed = spec, params, stats, gamma, seed
        self.numels = {n: p.numel() for n, p in params.items()}  # global sizes
        self.layouts = {n: layout_of(p) for n, p in params.items()}  # None: not sharded

    @torch.no_grad()
    def __getitem__(self, name: str) -> torch.Tensor:
        param, layout = self.params[name], self.layouts[name]
        theta = local(param).detach().float()
        generator = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}:{name}".encode()))

        def get(need: str) -> torch.Tensor | None:
            table = _table(self.stats, need)
            value = None if table is None else table.get(name)
            return None if value is None else value.to(theta.device, torch.float32)

        inputs = ScoreInputs(
            theta=theta,
            g_f=get(FORGET_GRAD),
            g_r=get(RETAIN_GRAD),
            fisher=get(RETAIN_FISHER),
            input_sq_norm=get(INPUT_NORMS),
            gamma=self.gamma,
            generator=generator,
            shape=tuple(param.shape),
            local=_identity if layout is None else layout.cut,
        )
        return self.spec.fn(inputs)

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _table(stats: Statistics, need: str) -> dict[str, torch.Tensor] | None:
    return {
        FORGET_GRAD: stats.forget_grad,
        RETAIN_GRAD: stats.retain_grad,
        RETAIN_FISHER: stats.retain_fisher,
        INPUT_NORMS: stats.input_sq_norms,
    }[need]
