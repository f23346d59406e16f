"""The options of every unlearning method: defaults (the published values) and help strings.

A light module (no torch): ``UnlearnConfig`` checks a method name and the method's options
against it, and ``wagle unlearn --help`` lists them, without loading the ML stack. Each
method's module (``wagle.unlearning.methods``) takes its ``Options`` from here; adding a
method adds its options and its name to ``METHOD_OPTIONS`` below (a test checks that
``METHODS`` and ``METHOD_OPTIONS`` name the same methods with the same options).
"""

from __future__ import annotations

from dataclasses import dataclass

from wagle import config as cfg
from wagle.errors import WagleError


@dataclass
class NoOptions:
    """A method without options."""


@dataclass
class RetainOptions:
    retain_weight: float = cfg.field(1.0, "λ, the weight of the retain term")
    retain_loss: str = cfg.field(
        "nll", "retain term: 'nll' on retain answers, or 'kl' to the original model's outputs"
    )

    def __post_init__(self) -> None:
        if self.retain_loss not in ("nll", "kl"):
            raise WagleError(f"retain_loss must be 'nll' or 'kl', got {self.retain_loss!r}")
        if self.retain_weight < 0:
            raise WagleError(f"retain_weight must be ≥ 0, got {self.retain_weight}")


@dataclass
class NPOOptions(RetainOptions):
    beta: float = cfg.field(0.1, "β, the inverse temperature of the preference loss")
    reference: str = cfg.field(
        "precomputed", "reference NLLs: 'precomputed' once before training, or 'live' model"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise WagleError(f"beta must be > 0, got {self.beta}")
        if self.reference not in ("precomputed", "live"):
            raise WagleError(f"reference must be 'precomputed' or 'live', got {self.reference!r}")


@dataclass
class SimNPOOptions(RetainOptions):
    beta: float = cfg.field(2.5, "β, the inverse temperature of the preference loss")
    delta: float = cfg.field(0.0, "δ, the reward margin subtracted from the mean NLL")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise WagleError(f"beta must be > 0, got {self.beta}")


@dataclass
class POOptions(RetainOptions):
    refusal_seed: int = cfg.field(0, "seed that picks a refusal template for each question")


@dataclass
class RMUOptions:
    rmu_layer: int | None = cfg.field(None, "decoder layer ℓ (default: min(7, n_layers // 2))")
    steering_coeff: float = cfg.field(6.5, "c, the norm of the random target direction")
    rmu_alpha: float = cfg.field(1200.0, "α, the weight of the retain activation term")
    rmu_seed: int = cfg.field(0, "seed of the random direction u")

    def __post_init__(self) -> None:
        if self.steering_coeff <= 0 or self.rmu_alpha < 0:
            raise WagleError("steering_coeff must be > 0 and rmu_alpha ≥ 0")


# ---- the methods users compare against (open-unlearning's defaults; docs/methods.md) ----


@dataclass
class IdkDPOOptions(RetainOptions):
    beta: float = cfg.field(0.1, "β, the inverse temperature of the preference loss")
    refusal_seed: int = cfg.field(0, "seed that picks a refusal template for each question")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise WagleError(f"beta must be > 0, got {self.beta}")


@dataclass
class UNDIALOptions(RetainOptions):
    # open-unlearning's UNDIAL recipe trains without a retain term (alpha 0)
    retain_weight: float = cfg.field(0.0, "λ, the weight of the retain term")
    undial_strength: float = cfg.field(
        10.0, "β, subtracted from the original model's logit of each answer token"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.undial_strength < 0:
            raise WagleError(f"undial_strength must be ≥ 0, got {self.undial_strength}")


@dataclass
class WGAOptions(RetainOptions):
    wga_power: float = cfg.field(1.0, "β, each forget token's NLL is weighted by p^β")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.wga_power < 0:
            raise WagleError(f"wga_power must be ≥ 0, got {self.wga_power}")


@dataclass
class SatImpOptions(RetainOptions):
    forget_weight: float = cfg.field(0.1, "γ, the weight of the forget term")
    sat_power: float = cfg.field(5.0, "β₁, the saturation weight p^β₁")
    imp_power: float = cfg.field(1.0, "β₂, the importance weight (1 − p)^β₂")

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.forget_weight, self.sat_power, self.imp_power) < 0:
            raise WagleError("forget_weight, sat_power and imp_power must be ≥ 0")


@dataclass
class CEUOptions:
    ignore_first_answer_tokens: int = cfg.field(
        1, "answer tokens at the start of each answer left out of the CE-U loss"
    )

    def __post_init__(self) -> None:
        if self.ignore_first_answer_tokens < 0:
            raise WagleError("ignore_first_answer_tokens must be ≥ 0")


# method name → its options (the names of ``METHODS``, known without importing torch)
METHOD_OPTIONS: dict[str, type] = {
    "ga": NoOptions,
    "graddiff": RetainOptions,
    "npo": NPOOptions,
    "po": POOptions,
    "rmu": RMUOptions,
    "simnpo": SimNPOOptions,
    "idkdpo": IdkDPOOptions,
    "undial": UNDIALOptions,
    "wga": WGAOptions,
    "satimp": SatImpOptions,
    "ceu": CEUOptions,
}
