"""An experiment recipe: which model and data, and the grid of cells to run on them.

A recipe is a YAML mapping over the fields of ``ExperimentRecipe``: a file, or one of the recipes
shipped inside the package (``wagle/recipes/<name>.yaml``, named by ``<name>``: ``wagle run
playground``), so that ``wagle demo`` works from any directory after ``pip install``. The grid is
unlearning methods × mask methods × ratios × seeds; ``dense`` and ``lora`` ignore the ratio
(one cell per method and seed, recorded at ratio 1.0). ``ratios`` may contain ``auto``: the
ratio of each (method, score mask, seed) is then searched (see ``auto_ratio``).

The **aggressiveness** axes ``learning_rates`` and ``epochs`` (lists) multiply the grid: each cell
runs at every learning rate and epoch budget, and its trajectory covers the steps within the
budget, so every (method, mask) gets a frontier of points (``wagle.report.frontier``).

``methods`` maps each unlearning method to its own overrides (any ``wagle unlearn`` option or
method option, as in ``configs/playground_npo.yaml``), applied over ``unlearn``, the overrides
shared by every method. Empty model / data fields mean the built playground's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wagle import config as cfg
from wagle.errors import WagleError

DENSE, LORA, AUTO = "dense", "lora", "auto"
WHOLE_MODEL_MASKS = (DENSE, LORA)  # mask methods that take no ratio
METHOD_LRS = "learning_rates"  # a method's own learning-rate axis, in its overrides


@dataclass
class ExperimentRecipe:
    model: str = cfg.field("", "model to unlearn (directory or hub id); default: playground target")
    retain_model: str = cfg.field(
        "", "retain model, evaluated once as the forget-quality reference; default: playground's"
    )
    reference: str = cfg.field(
        "", "a saved eval.json of the retain model (then retain_model is not evaluated)"
    )
    data: str = cfg.field("", "QA data (directory of splits or hub id); default: playground data")
    forget_split: str = cfg.field("forget10", "split to forget (also the evaluated forget split)")
    retain_split: str = cfg.field("retain90", "split to keep")
    benchmark: str = cfg.field("playground", "evaluation benchmark (see wagle evaluate)")
    methods: dict = cfg.field(
        {"npo": {}, "graddiff": {}}, "unlearning method → its option overrides (or a list)"
    )
    masks: list[str] = cfg.field(
        [DENSE, "wagle", "random", "magnitude"],
        "mask methods: dense, lora or any score method of wagle attribute",
    )
    ratios: list = cfg.field([0.5], "mask ratios in (0, 1], or auto (searched per cell)")
    learning_rates: list[float] = cfg.field(
        [],
        "aggressiveness axis: every cell at each of these learning rates (a method's own list: "
        "methods: {npo: {learning_rates: [...]}}); empty: each method's learning_rate",
    )
    epochs: list[float] = cfg.field(
        [], "aggressiveness axis: every cell with each of these epoch budgets; empty: the methods'"
    )
    seeds: list[int] = cfg.field([0], "seeds of attribution sampling and unlearning")
    gamma: float = cfg.field(1e-6, "γ of the wagle scores (gradients summed over samples)")
    utility_floor: float = cfg.field(
        0.95, "auto ratio: a cell is eligible if its utility ≥ this × the target's"
    )
    unlearn: dict = cfg.field({}, "wagle unlearn options shared by every method")
    attribution: dict = cfg.field({}, "wagle attribute options (batch_size, eligible, ...)")
    evaluation: dict = cfg.field({}, "wagle evaluate options (batch_size, max_new_tokens, ...)")
    save_model: bool = cfg.field(False, "save each cell's selected model (disk!)")
    # Forget requests run in order instead of the grid (wagle.experiment.sequential).
    sequential: dict = cfg.field(
        {}, "forget requests in order, one patch each (see docs/patches.md); empty: the grid"
    )

    def __post_init__(self) -> None:
        from wagle.attribution import SCORES  # the registries import torch: only when built
        from wagle.unlearning import METHODS

        if isinstance(self.methods, list):
            self.methods = {name: {} for name in self.methods}
        if not isinstance(self.methods, dict) or not self.methods:
            raise WagleError("methods must name at least one unlearning method")
        for name, overrides in self.methods.items():
            if name not in METHODS:
                raise WagleError(
                    f"unknown unlearning method {name!r}; choose from {', '.join(sorted(METHODS))}"
                )
            if not isinstance(overrides or {}, dict):
                raise WagleError(f"the options of method {name!r} must be a mapping")
        valid = {DENSE, LORA, *SCORES}
        if bad := [m for m in self.masks if m not in valid]:
            raise WagleError(
                f"unknown mask method(s) {bad}; choose from {', '.join(sorted(valid))}"
            )
        self.ratios = [parse_ratio(r) for r in _as_list(self.ratios)]
        self.learning_rates = _positive(self.learning_rates, "learning_rates")
        self.epochs = _positive(self.epochs, "epochs")
        for overrides in self.methods.values():
            if overrides and METHOD_LRS in overrides:
                overrides[METHOD_LRS] = _positive(overrides[METHOD_LRS], METHOD_LRS)
        self.seeds = [int(s) for s in _as_list(self.seeds)]
        self.gamma = float(self.gamma)
        if not self.masks or not self.ratios or not self.seeds:
            raise WagleError("masks, ratios and seeds must each have at least one entry")
        if not 0 <= self.utility_floor <= 1:
            raise WagleError(f"utility_floor is a fraction in [0, 1]; got {self.utility_floor}")
        for name in self.methods:  # every cell's unlearning config must build: fail now
            self.unlearn_options(name)
        self.loading()

    def loading(self) -> tuple[str, bool]:
        """(dtype, trust_remote_code) the model is loaded with: one per experiment, since the
        model is loaded once for every cell; methods that ask for different ones are an error."""
        choices = {
            (run.get("dtype", "float32"), bool(run.get("trust_remote_code", False)))
            for run, _ in map(self.unlearn_options, self.methods)
        }
        if len(choices) > 1:
            raise WagleError(
                "the model is loaded once for every cell: all methods must use the same dtype "
                f"and trust_remote_code; the recipe asks for {sorted(choices)}"
            )
        return choices.pop()

    def axes(self, method: str) -> list[tuple[float | None, float | None]]:
        """The (learning rate, epochs) of ``method``'s cells; None: the method's own value."""
        lrs = (self.methods[method] or {}).get(METHOD_LRS) or self.learning_rates or [None]
        return [(lr, epochs) for lr in lrs for epochs in self.epochs or [None]]

    def unlearn_options(self, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(run options, method options) of ``method``: shared overrides, then its own."""
        from wagle.unlearning.config import UnlearnConfig, method_options, split_recipe

        own = {k: v for k, v in (self.methods[method] or {}).items() if k != METHOD_LRS}
        run, options = split_recipe({**self.unlearn, **own, "method": method})
        method_options(method, options)  # validates both now, before any model is loaded
        cfg.build(UnlearnConfig, run)
        return run, options


def parse_ratio(value: Any) -> float | str:
    """A ratio in (0, 1] or ``auto``."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise WagleError(f"a ratio is a number in (0, 1] or 'auto'; got {value!r}") from None
    if not 0 < ratio <= 1:
        raise WagleError(f"a ratio is a number in (0, 1] or 'auto'; got {value!r}")
    return round(ratio, 4)


def shipped_recipes() -> dict[str, Path]:
    """The recipes installed with wagle (``wagle/recipes/*.yaml``, package data), by name."""
    from importlib.resources import files

    folder = Path(str(files("wagle") / "recipes"))
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def resolve_recipe(recipe: str | Path) -> Path:
    """A recipe file, or the name of a shipped recipe (``playground``); a user error otherwise.

    A file path wins over a shipped name, so a local ``playground.yaml`` is never shadowed.
    """
    path = Path(recipe)
    if path.is_file():
        return path
    shipped = shipped_recipes()
    if str(recipe) in shipped:
        return shipped[str(recipe)]
    raise WagleError(
        f"recipe not found: {recipe} is neither a file nor a shipped recipe ({', '.join(shipped)})"
    )


def load_recipe(recipe: str | Path | None, **overrides: Any) -> ExperimentRecipe:
    """The recipe of a YAML file or a shipped recipe's name (None: the defaults), with the
    non-None ``overrides``."""
    values = cfg.load_yaml(None if recipe is None else resolve_recipe(recipe))
    values |= {k: v for k, v in overrides.items() if v is not None}
    return cfg.build(ExperimentRecipe, values)


def recipe_dict(recipe: ExperimentRecipe) -> dict[str, Any]:
    return dataclasses.asdict(recipe)


def _positive(values: Any, name: str) -> list[float]:
    try:
        numbers = [float(v) for v in _as_list(values)]
    except (TypeError, ValueError):
        numbers = [-1.0]
    if any(v <= 0 for v in numbers):
        raise WagleError(f"{name} must be a list of numbers > 0; got {values!r}")
    return numbers


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]
