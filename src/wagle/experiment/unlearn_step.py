"""The unlearning step of a cell: ``wagle.unlearning.unlearn_model`` on in-memory objects.

``unlearn_model`` (issue 8) trains with evaluation during unlearning and returns the selected
checkpoint and its trajectory. Until it is available on this branch, ``_final_step_only``
does the same training in memory and returns the last step, with an empty trajectory.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wagle.attribution.masks import Mask
from wagle.unlearning.config import UnlearnConfig


@dataclass
class StepResult:
    model: torch.nn.Module
    step_log: list[dict[str, float]]
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    selected: dict[str, Any] = field(default_factory=dict)


def unlearn_in_memory(
    model: torch.nn.Module,
    tokenizer,
    forget: list[dict],
    retain: list[dict],
    config: UnlearnConfig,
    options: Any,
    mask: Mask | None,
    reference: dict | None,
    out: Path,
):
    """Unlearn ``model`` (changed in place) and return the selected checkpoint's model."""
    try:
        from wagle.unlearning import unlearn_model
    except ImportError:
        unlearn_model = _final_step_only
    return unlearn_model(
        model, tokenizer, forget, retain, config, options, mask=mask, reference=reference, out=out
    )


def _final_step_only(
    model, tokenizer, forget, retain, config, options=None, mask=None, reference=None, out=None
) -> StepResult:
    from wagle.registry import lookup
    from wagle.unlearning.batch import PairCollator, PairedDataset
    from wagle.unlearning.lora import add_lora, merge_lora
    from wagle.unlearning.objective import METHODS
    from wagle.unlearning.run import _encode, training_arguments
    from wagle.unlearning.trainer import MaskedUnlearningTrainer

    objective = lookup(METHODS, config.method, "unlearning method")(options)
    data = PairedDataset(
        _encode(tokenizer, objective.forget_records(forget), config),
        _encode(tokenizer, retain, config),
        config.seed,
    )
    trained = (
        add_lora(model, config.lora_targets, config.lora_rank, config.lora_alpha, mask)
        if config.lora
        else model
    )
    with tempfile.TemporaryDirectory() as scratch:
        trainer = MaskedUnlearningTrainer(
            model=trained,
            args=training_arguments(config, scratch),
            train_dataset=data,
            data_collator=PairCollator(tokenizer.pad_token_id),
            objective=objective,
            mask=None if config.lora else mask,
        )
        objective.prepare(model, data, tokenizer.pad_token_id)
        trainer.train()
    final = merge_lora(trained, mask) if config.lora else model
    step = trainer.state.global_step
    return StepResult(final, trainer.step_log, [], {"step": step, "rule": "last step"})
