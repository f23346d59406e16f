"""Checks of a command's inputs before any model is loaded (no torch, no transformers).

Every check raises ``WagleError`` with one line that names the input and says what to fix;
``warn`` prints a one-line warning on stderr (once per message). The CLI commands (and any
new command) call these right after building their config; the table of what a user sees
for each bad input is docs/bad-inputs.md.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

from wagle.errors import WagleError

RUN_MARKERS = ("run_config.json", "eval.json")  # files that mark a finished output directory
_WARNED: set[str] = set()
# JSON files of a saved model and tokenizer, read by the loaders
MODEL_JSON_FILES = ("config.json", "generation_config.json", "tokenizer_config.json")
MODEL_JSON_FILES += ("tokenizer.json", "special_tokens_map.json")


def warn(message: str) -> None:
    """``wagle: warning: <message>`` on stderr, once per distinct message."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"wagle: warning: {message}", file=sys.stderr)


def looks_like_hub_id(source: str) -> bool:
    """``name`` or ``org/name``, not a path: no leading ``.``, ``/``, ``~``, no file suffix,
    and not under an existing local directory (``runs/typo`` when ``runs/`` exists is a path)."""
    text = str(source)
    return (
        not text.startswith((".", "/", "~"))
        and text.count("/") <= 1
        and not text.endswith((".json", ".jsonl", ".safetensors", ".yaml", ".yml"))
        and not ("/" in text and Path(text).parent.is_dir())
    )


def check_model_dir(source: str, what: str = "model") -> None:
    """A local model directory must exist and hold a config.json and safetensors weights.

    A hub id (``org/name``) that is not a local path is left to the loader (offline: the
    local HF cache).
    """
    path = Path(source)
    if not path.exists():
        if looks_like_hub_id(source):
            return
        raise WagleError(f"{what} not found: {source}")
    if not path.is_dir():
        raise WagleError(f"{what} {source} is a file; give the model's directory")
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        raise WagleError(
            f"{what} directory {source} holds a PEFT adapter, not a model: merge it into its "
            "base model (merge_and_unload) and save that"
        )
    if not (path / "config.json").is_file():
        raise WagleError(f"{what} directory {source} has no config.json: not a saved HF model")
    for name in MODEL_JSON_FILES:  # transformers skips a broken generation config silently
        if (path / name).is_file():
            read_json_object(path / name, f"{what} directory {source}: {name}")
    for index in path.glob("*.safetensors.index.json"):
        check_shards(index, what)
    for file in safetensors_files(path):
        check_safetensors_file(file, f"{what} weights file")
    if not safetensors_files(path):
        pickled = sorted(p.name for p in path.glob("*.bin")) + sorted(
            p.name for p in path.glob("*.pt*")
        )
        hint = (
            f" (only {pickled[0]}: a pickle, which wagle never loads; re-save the model with "
            "save_pretrained(..., safe_serialization=True))"
            if pickled
            else ""
        )
        raise WagleError(f"{what} directory {source} holds no safetensors weights{hint}")


def safetensors_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.safetensors"))


def read_safetensors_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (names, dtypes, shapes), without reading tensors.

    A file that is not safetensors (a pickle, a truncated file) is a user error.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if size > 100_000_000:
                raise ValueError("header too large")
            text = handle.read(size)
    except OSError:
        raise WagleError(f"{path} cannot be read") from None
    except (struct.error, ValueError):
        text, size = b"", -1
    if path.stat().st_size == 0:
        raise WagleError(f"{path} is empty (0 bytes): not a safetensors file")
    if size > len(text):  # a header that promises more than the file holds
        raise WagleError(
            f"{path} is truncated: {path.stat().st_size:,} bytes, fewer than its header alone "
            f"({8 + size:,}); copy or save it again"
        )
    try:
        header = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise WagleError(
            f"{path} is not a safetensors file (wagle reads masks and weights only as "
            "safetensors, never pickles)"
        ) from None
    if not isinstance(header, dict):
        raise WagleError(f"{path} is not a safetensors file")
    return header


def check_safetensors_file(path: str | Path, what: str) -> None:
    """A safetensors file must hold every byte its header describes: a file cut short by an
    interrupted copy or download otherwise fails inside the loader, or loads garbage."""
    path = Path(path)
    header = read_safetensors_header(path)
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    with open(path, "rb") as handle:
        (header_size,) = struct.unpack("<Q", handle.read(8))
    expected, actual = 8 + header_size + max(ends, default=0), path.stat().st_size
    if actual < expected:
        raise WagleError(
            f"{what} {path} is truncated: {actual:,} bytes where its header describes "
            f"{expected:,}; copy or save it again"
        )


def check_shards(index: Path, what: str) -> None:
    """Every shard a ``*.safetensors.index.json`` names must be next to it."""
    weight_map = read_json_object(index, f"{what} index {index}").get("weight_map")
    if not isinstance(weight_map, dict):
        raise WagleError(f"{what} index {index} has no 'weight_map'")
    if missing := sorted({f for f in weight_map.values() if not (index.parent / f).is_file()}):
        raise WagleError(
            f"{what} index {index} names {len(missing)} shard(s) that are not there, "
            f"e.g. {missing[0]}"
        )


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON file holding one object; anything else is a user error naming ``what``."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise WagleError(f"{what} cannot be read: {err}") from None
    except json.JSONDecodeError as err:
        raise WagleError(f"{what} is not valid JSON (line {err.lineno}): {err.msg}") from None
    if not isinstance(value, dict):
        raise WagleError(f"{what} is not a JSON object")
    return value


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} of a safetensors file, from its header."""
    header = read_safetensors_header(path)
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def mask_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{parameter name: shape} of a mask file: from its packing layout (metadata
    ``wagle_mask_layout``, ``{name: [encoding, shape]}``) if it has one, else the tensors'."""
    header = read_safetensors_header(path)
    layout = (header.get("__metadata__") or {}).get("wagle_mask_layout")
    if layout is not None:
        return {name: tuple(shape) for name, (_, shape) in json.loads(layout).items()}
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def check_mask_file(mask: str, model: str | None = None) -> None:
    """The mask must exist, be safetensors, and (for a local model) name the model's tensors
    with the model's shapes: checked from both files' headers, no weights read."""
    path = Path(mask)
    if not path.is_file():
        raise WagleError(f"mask file not found: {mask}")
    shapes = mask_shapes(path)
    if not shapes:
        raise WagleError(f"mask {mask} holds no tensors")
    check_safetensors_file(path, "mask file")
    if model is None or not Path(model).is_dir():
        return
    model_shapes: dict[str, tuple[int, ...]] = {}
    for file in safetensors_files(Path(model)):
        model_shapes |= tensor_shapes(file)
    if not model_shapes:
        return
    if unknown := sorted(set(shapes) - set(model_shapes)):
        raise WagleError(
            f"mask {mask} was made for another model: {len(unknown)} of its {len(shapes)} "
            f"tensors are not in {model}, e.g. {unknown[0]!r}"
        )
    for name, shape in shapes.items():
        if shape != model_shapes[name]:
            raise WagleError(
                f"mask {mask} was made for another model: {name} is {shape} in the mask "
                f"but {model_shapes[name]} in {model}"
            )


def check_data_source(source: str, split: str | None, what: str) -> None:
    """A local data source must exist; a directory needs a split that is in it."""
    if not source:
        raise WagleError(f"--{what} is required")
    path = Path(source)
    if not path.exists():
        if looks_like_hub_id(source):
            return
        raise WagleError(f"{what} data not found: {source}")
    if path.is_dir():
        if not split:
            raise WagleError(f"{what} data {source} is a directory: name the split to read")
        if not any((path / f"{split}{ext}").is_file() for ext in (".jsonl", ".json")):
            names = sorted(p.stem for p in path.glob("*.json*"))
            raise WagleError(
                f"no split {split!r} in {source}; available: {', '.join(names) or 'none'}"
            )


def emptiness(value: Any) -> str | None:
    """What makes a text field hold nothing to train on or score (None if nothing does): an
    empty or blank string, an empty list, or a list with a non-string or blank item."""
    if isinstance(value, str):
        return None if value.strip() else "is empty"
    if isinstance(value, list):
        if not value:
            return "is an empty list"
        if not all(isinstance(v, str) for v in value):
            return "holds an item that is not a string"
        if not all(v.strip() for v in value):
            return "holds an empty string"
    return None


def check_ratio(ratio: float) -> None:
    if not 0 < ratio <= 1:
        raise WagleError(f"ratio must be in (0, 1] (the fraction of weights selected); got {ratio}")


def check_output(out: str | Path, overwrite: bool, markers: tuple[str, ...] = RUN_MARKERS) -> None:
    """Refuse to replace a finished run (a directory holding one of ``markers``, or an
    existing file) unless ``overwrite``."""
    path = Path(out)
    if overwrite or not path.exists():
        return
    if path.is_file():
        raise WagleError(f"{out} already exists; pass --overwrite to replace it")
    if any((path / m).is_file() for m in markers):
        raise WagleError(f"{out} already holds a finished run; pass --overwrite to replace it")


def record_key(record: dict[str, Any] | str) -> str:
    """What identifies a sample: its text, or its question and answer."""
    if isinstance(record, str):
        return record
    return json.dumps([record.get("question"), record.get("answer"), record.get("text")])


def warn_overlap(forget: list, retain: list) -> int:
    """Warn when forget samples also appear in the retain set; returns how many do."""
    retained = {record_key(r) for r in retain}
    shared = sum(record_key(r) in retained for r in forget)
    if shared:
        warn(
            f"{shared} of {len(forget)} forget samples also appear in the retain set: "
            "the two objectives pull those samples in opposite directions"
        )
    return shared


def check_same_questions(ours: list[str], reference: list[str], path: str) -> None:
    """A reference evaluation must have scored exactly this run's forget questions."""
    if ours == reference:
        return
    if len(ours) != len(reference):
        detail = f"{len(reference)} forget questions there, {len(ours)} here"
    else:
        i = next(i for i, (a, b) in enumerate(zip(ours, reference, strict=True)) if a != b)
        detail = f"question {i} differs ({reference[i][:40]!r} there, {ours[i][:40]!r} here)"
    raise WagleError(
        f"reference {path} was evaluated on other forget questions ({detail}): "
        "evaluate the retain model on the same forget data"
    )
