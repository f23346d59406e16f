"""Checks made from file headers alone, before anything is loaded or written (no torch):
``wagle unlearn --save patch|both`` and the inputs of ``wagle patch``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wagle import validate
from wagle.errors import WagleError
from wagle.patches.signature import Signature, check_signature, stored_signature

SAVE_CHOICES = ("model", "patch", "both")
FORMAT_KEY = "wagle_patch_format"
# UnlearnConfig.dtype → the safetensors name of the weights it trains
_DTYPE_NAMES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files that hold a model directory's weights: those its index names
    (``model.safetensors.index.json``), else ``model.safetensors``, else every
    ``*.safetensors`` file that is not a patch (a ``--save both`` output holds one)."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        return [
            directory / f for f in sorted(set(json.loads(index.read_text())["weight_map"].values()))
        ]
    if (directory / "model.safetensors").is_file():
        return [directory / "model.safetensors"]
    return [
        f
        for f in validate.safetensors_files(directory)
        if FORMAT_KEY not in (validate.read_safetensors_header(f).get("__metadata__") or {})
    ]


def header_entries(directory: Path) -> Iterator[tuple[Path, int, str, dict[str, Any]]]:
    """(file, byte offset of its data, tensor name, header entry) of every tensor of a model
    directory's weight files."""
    for file in weight_files(directory):
        header = validate.read_safetensors_header(file)
        with open(file, "rb") as handle:  # the data follows the 8-byte length and the header
            data_start = 8 + int.from_bytes(handle.read(8), "little")
        for name, entry in header.items():
            if name != "__metadata__":
                yield file, data_start, name, entry


def directory_signature(model: str) -> Signature:
    """The signature of a local model directory, from its files' headers."""
    validate.check_model_dir(model)
    if not Path(model).is_dir():
        raise WagleError(f"model not found: {model} (give a local model directory)")
    return {
        name: (tuple(entry["shape"]), entry["dtype"])
        for _, _, name, entry in header_entries(Path(model))
    }


def patch_header(path: str) -> dict[str, Any]:
    """The metadata of a patch file (JSON-decoded), read from its header; a user error for
    a missing file, a file that is not safetensors or not a patch."""
    if not Path(path).is_file():
        raise WagleError(f"patch file not found: {path}")
    raw = validate.read_safetensors_header(path).get("__metadata__") or {}
    if FORMAT_KEY not in raw:
        raise WagleError(f"{path} is not a wagle patch (no {FORMAT_KEY} in its metadata)")
    try:
        return {k: v if k == FORMAT_KEY else json.loads(v) for k, v in raw.items()}
    except ValueError:
        raise WagleError(f"{path} has a corrupt patch header") from None


def check_model_fits(model: str, patch: str, role: str) -> None:
    """The model directory must have the patch base's tensors, shapes and dtypes."""
    base = stored_signature(patch_header(patch)["base"]["tensors"])
    check_signature(base, directory_signature(model), f"model {model}", role)


def check_patch_base(model: str, dtype: str) -> None:
    """A patch records the base's values in the base's dtype: the base must be a local
    directory whose floating-point weights are ``dtype``, the dtype the run trains in (else
    the unlearned weights are not the base's kind of values and a patch cannot hold them)."""
    if not Path(model).is_dir():
        raise WagleError(f"--save patch needs the model as a local directory, got {model!r}")
    want = _DTYPE_NAMES[dtype]
    for _, _, name, entry in header_entries(Path(model)):
        if entry["dtype"].startswith(("F", "BF")) and entry["dtype"] != want:
            raise WagleError(
                f"--save patch: {model} stores {name} as {entry['dtype']} but the run trains "
                f"{dtype} weights (--dtype); a patch holds values in the base's dtype: "
                f"unlearn with --dtype {_dtype_of(entry['dtype'])} or --save model"
            )


def check_new_output(out: str, overwrite: bool) -> None:
    """An output that exists (a file, or a directory with anything in it) is replaced only
    with ``overwrite``."""
    path = Path(out)
    if overwrite or not path.exists():
        return
    if path.is_file() or any(path.iterdir()):
        raise WagleError(f"{out} already exists; pass --overwrite to replace it")


def _dtype_of(name: str) -> str:
    return next((d for d, n in _DTYPE_NAMES.items() if n == name), name)
