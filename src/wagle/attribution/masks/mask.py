"""The mask data contract: parameter name → bool tensor shaped like the parameter (True = may
change), and the checks that a mask fits a model."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from wagle.errors import WagleError

Mask = dict[str, torch.Tensor]


def check_mask(mask: Mapping[str, torch.Tensor], model: torch.nn.Module) -> None:
    """A user error, in one line, unless ``mask`` names only ``model``'s parameters, shapes equal."""
    check_shapes({name: tuple(selected.shape) for name, selected in mask.items()}, model)


def check_shapes(shapes: Mapping[str, tuple[int, ...]], model: torch.nn.Module) -> None:
    """``check_mask`` from the shapes alone (a mask file's header: no tensor is read)."""
    params = dict(model.named_parameters())
    if unknown := sorted(set(shapes) - set(params)):
        raise WagleError(
            f"mask does not fit this model: {len(unknown)} name(s) not in the model, e.g. {unknown[0]!r}"
        )
    for name, shape in shapes.items():
        if tuple(shape) != tuple(params[name].shape):
            raise WagleError(
                f"mask does not fit this model: {name} is {tuple(shape)} in the mask "
                f"but {tuple(params[name].shape)} in the model"
            )


def complete_mask(mask: Mask, model: torch.nn.Module) -> Mask:
    """``mask`` extended to every parameter of ``model``; parameters it lacks are all False
    (on CPU, where selection puts masks)."""
    check_mask(mask, model)
    return {
        name: mask[name] if name in mask else torch.zeros(p.shape, dtype=torch.bool)
        for name, p in model.named_parameters()
    }
