"""The patch of an unlearning run: what it records about the run, ``wagle unlearn --save
patch|both`` and ``wagle patch create`` on a run directory.

Metadata of a run's patch: ``method``, ``ratio`` (the mask's; 1.0 for dense), ``mask_sha256``
(``mask_hash``: the mask's content, however it is stored; None for dense), ``recipe_hash`` (the
run's options and the method's, without paths and output settings), ``evaluation`` (how the
kept checkpoint was chosen and its figures, when the run was evaluated while it unlearned) and
``base_model`` (the path the base was read from, for information: the fingerprint is what is
checked).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wagle import config as cfg
from wagle.io import hash_config
from wagle.patches.create import create_patch
from wagle.patches.files import PatchFile
from wagle.patches.modelfiles import ModelFiles
from wagle.patches.signature import model_tensors

PATCH_FILE = "patch.safetensors"
# options that say where things are or how results are shown and kept, not what the run does
NOT_RECIPE = (
    "model", "forget", "retain", "mask", "out", "progress", "save", "eval_reference", "eval_data",
)  # fmt: skip


def mask_hash(mask: Mapping[str, torch.Tensor] | None) -> str | None:
    """SHA-256 over each mask tensor's name, shape and packed bits, in sorted name order: the
    same for a mask in memory and for its file (whatever its packing)."""
    if mask is None:
        return None
    digest = hashlib.sha256()
    for name in sorted(mask):
        selected = mask[name].detach().reshape(-1).to("cpu", torch.bool).numpy()
        digest.update(f"{name}\0{tuple(mask[name].shape)}\0".encode())
        digest.update(np.packbits(selected, bitorder="little").tobytes())
    return digest.hexdigest()


def run_metadata(
    run: dict[str, Any],
    method_options: dict[str, Any],
    mask: Mapping[str, torch.Tensor] | None,
    ratio: float | None,
    evaluation: dict[str, Any] | None,
) -> dict[str, Any]:
    """The metadata of a run's patch (module docstring); ``run``: the UnlearnConfig as a dict."""
    recipe = {k: v for k, v in run.items() if k not in NOT_RECIPE}
    return {
        "method": run.get("method"),
        "ratio": ratio if mask is not None else 1.0,
        "mask_sha256": mask_hash(mask),
        "recipe_hash": hash_config({"run": recipe, "method_options": method_options}),
        "evaluation": evaluation,
        "base_model": run.get("model"),
    }


def save_run_patch(result: Any, config: Any, options: Any, directory: str | Path) -> PatchFile:
    """``wagle unlearn --save patch|both``: the patch from the base files (``config.model``) to
    the unlearned model in memory (``result.model``), in ``directory/patch.safetensors``."""
    from wagle.attribution.masks import open_mask

    mask = open_mask(config.mask) if config.mask else None
    evaluation = (
        {"criterion": result.criterion, "selected": result.selected} if result.trajectory else None
    )
    metadata = run_metadata(
        cfg.to_dict(config),
        dataclasses.asdict(options),
        mask,
        mask.metadata.get("ratio") if mask is not None else None,
        evaluation,
    )
    out = Path(directory) / PATCH_FILE
    return create_patch(ModelFiles(config.model), model_tensors(result.model), out, metadata)


def run_directory_metadata(directory: str | Path) -> dict[str, Any]:
    """The metadata of a run's patch from a ``wagle unlearn`` output directory
    (``run_config.json``); empty for a directory without one. The mask is hashed if its file is
    still where the run read it."""
    path = Path(directory) / "run_config.json"
    if not path.is_file():
        return {}
    record = json.loads(path.read_text())
    mask_record = record.get("mask") or {}
    mask = None
    if mask_record.get("path") and Path(mask_record["path"]).is_file():
        from wagle.attribution.masks import open_mask

        mask = open_mask(mask_record["path"])
    evaluated = (Path(directory) / "trajectory.json").is_file()
    evaluation = (
        {"criterion": record.get("criterion"), "selected": record.get("selected")}
        if evaluated
        else None
    )
    metadata = run_metadata(
        record.get("run", {}),
        record.get("method_options", {}),
        mask,
        (mask_record.get("metadata") or {}).get("ratio"),
        evaluation,
    )
    if mask_record and mask is None:  # dense or moved: keep what the run recorded of it
        metadata |= {"ratio": (mask_record.get("metadata") or {}).get("ratio"), "mask_sha256": None}
        metadata["mask_file_fingerprint"] = mask_record.get("fingerprint")
    return metadata
