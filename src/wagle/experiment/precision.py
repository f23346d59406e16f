"""One optimizer precision across an experiment: ``optimizer_state: auto`` resolved once.

Per run, ``auto`` picks selective state (``SelectiveAdamW``) when the mask selects fewer than
``AUTO_MAX_DENSITY`` (half) of the trainable weights, and dense state otherwise. For fp32
weights the two give the same weights (fp32 moments either way; tested to 1e-6). For bf16 or
fp16 weights they do not: selective state keeps fp32 masters and moments for the selected
entries, dense state keeps moments in the weights' dtype and no master, so updates below the
weight's resolution round away. Resolved per cell, a bf16 ratio sweep would switch precision at
ρ 0.5 and confound the ratio with it. So for such weights ``auto`` is resolved once for the
experiment, as it resolves for the experiment's densest cell (the state that fits every cell,
since the densest needs the most): ``selected`` if every cell selects under half the weights,
else ``full``. Every result records the state it trained with (``CellResult.optimizer_state``)
and the report says which precisions its cells used.
"""

from __future__ import annotations

from wagle.experiment.auto_ratio import HIGH
from wagle.experiment.recipe import AUTO, DENSE, LORA, ExperimentRecipe
from wagle.unlearning.config import AUTO_MAX_DENSITY


def sweep_optimizer_state(cells, recipe: ExperimentRecipe, dtype: str) -> str | None:
    """The state every ``auto`` cell of a ``dtype`` experiment trains with; None: fp32 weights,
    where ``auto`` stays per cell (same precision either way, selective state is faster)."""
    if dtype == "float32":
        return None
    # LoRA trains fp32 adapters, not the weights: it does not count
    densities = [1.0 if c.mask == DENSE else c.ratio for c in cells if c.mask != LORA]
    if AUTO in recipe.ratios:
        densities.append(HIGH)  # the search may probe up to this ratio
    return "selected" if max(densities, default=1.0) < AUTO_MAX_DENSITY else "full"
