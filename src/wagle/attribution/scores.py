"""Score functions: one small function per method, registered by name in ``SCORES``.

Every score is ≥ 0 and larger means "more worth unlearning"; every one is computed per
parameter from θ and the collected ``Statistics`` (gradients summed over samples, see
gradients.py). A method declares which statistics it needs, so the passes over data run only
what it uses, and may return ``None`` for a parameter it cannot score (Wanda: non-linear
weights), which is then never selected.
"""

from __future__ import annotations

from collections.abc import Callable
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

Scores = dict[str, torch.Tensor]  # parameter name → fp32 scores shaped like the parameter


@dataclass(frozen=True)
class ScoreInputs:
    """What a score function sees for one parameter (fp32, shaped like θ unless noted)."""

    theta: torch.Tensor
    g_f: torch.Tensor | None  # Σ forget gradients
    g_r: torch.Tensor | None  # Σ retain gradients
    fisher: torch.Tensor | None  # Σ squared retain batch gradients
    input_sq_norm: torch.Tensor | None  # [in_features] Σ x_j² over forget tokens (linear only)
    gamma: float
    generator: torch.Generator  # CPU generator, seeded once per scoring


@dataclass(frozen=True)
class ScoreMethod:
    fn: Callable[[ScoreInputs], torch.Tensor | None]
    needs: frozenset[str]
    granularity: str  # the selection the method is defined with
    uses_gamma: bool


SCORES: dict[str, ScoreMethod] = {}


def score(name: str, needs: tuple[str, ...] = (), granularity: str = "global") -> Callable:
    """Decorator: register ``fn(ScoreInputs) -> scores`` as score method ``name``."""

    def add(fn: Callable[[ScoreInputs], torch.Tensor | None]) -> Callable:
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
    """Uniform in [0, 1), from the seeded generator (parameter order fixes the draw)."""
    return torch.rand(x.theta.shape, generator=x.generator).to(x.theta.device)


@score("wanda", needs=(INPUT_NORMS,), granularity="row")
def wanda(x: ScoreInputs) -> torch.Tensor | None:
    """|W_ij| · ‖X_j‖₂ for linear weights [out, in]; ‖X_j‖ over the forget tokens."""
    if x.input_sq_norm is None:
        return None
    return x.theta.abs() * x.input_sq_norm.sqrt()


def compute_scores(
    model: torch.nn.Module,
    stats: Statistics,
    method: str,
    names: list[str],
    *,
    gamma: float = 1e-6,
    seed: int = 0,
) -> Scores:
    """Scores of ``method`` for parameters ``names`` (those it can score), fp32, in model order."""
    spec = lookup(SCORES, method, "score method")
    generator = torch.Generator().manual_seed(seed)
    wanted = set(names)
    scores: Scores = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name not in wanted:
                continue
            value = spec.fn(_inputs(name, param, stats, gamma, generator))
            if value is not None:
                scores[name] = value
    if not scores:
        raise WagleError(f"score method {method!r} can score none of the eligible parameters")
    return scores


def _inputs(
    name: str, param: torch.Tensor, stats: Statistics, gamma: float, generator: torch.Generator
) -> ScoreInputs:
    def get(table: dict[str, torch.Tensor] | None) -> torch.Tensor | None:
        return None if table is None else table.get(name)

    return ScoreInputs(
        theta=param.detach().float(),
        g_f=get(stats.forget_grad),
        g_r=get(stats.retain_grad),
        fisher=get(stats.retain_fisher),
        input_sq_norm=get(stats.input_sq_norms),
        gamma=gamma,
        generator=generator,
    )
