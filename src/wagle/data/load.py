"""Load records in the three formats wagle speaks (DESIGN.md §3).

- QA (TOFU schema): ``question``, ``answer``; evaluation adds ``paraphrased_answer`` (str) and
  ``perturbed_answer`` (list of str).
- Raw text: ``text``.
- Multiple choice (WMDP / MMLU): ``question``, ``choices`` (list of str), ``answer`` (index).

A source is a local ``.json``/``.jsonl`` file, a directory holding ``<split>.jsonl`` (how the
playground and a local TOFU copy are laid out), or a Hugging Face hub id such as
``locuslab/TOFU`` with the config name as ``split`` (read through ``datasets``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wagle.errors import WagleError
from wagle.validate import emptiness, looks_like_hub_id

Record = dict[str, Any]


def load_qa(
    source: str | Path, split: str | None = None, *, for_eval: bool = False
) -> list[Record]:
    """QA records; ``for_eval`` also requires the paraphrased and perturbed answers."""
    records = read_records(source, split)
    schema: dict[str, type] = {"question": str, "answer": str}
    if for_eval:
        schema |= {"paraphrased_answer": str, "perturbed_answer": list}
    _check_schema(records, schema, _named(source, split))
    return records


def load_text(source: str | Path, split: str | None = None) -> list[str]:
    """The ``text`` field of every record of a raw-text corpus."""
    records = read_records(source, split)
    _check_schema(records, {"text": str}, _named(source, split))
    return [r["text"] for r in records]


def load_mcq(source: str | Path, split: str | None = None) -> list[Record]:
    """Multiple-choice records; ``answer`` must index into ``choices``."""
    records = read_records(source, split)
    _check_schema(records, {"question": str, "choices": list, "answer": int}, _named(source, split))
    for i, r in enumerate(records):
        if not 0 <= r["answer"] < len(r["choices"]):
            raise WagleError(f"{source}: record {i} has answer {r['answer']} outside its choices")
    return records


def read_records(source: str | Path, split: str | None = None) -> list[Record]:
    """Records from a file, a directory of split files, or a hub data set; never empty."""
    path = Path(source)
    if path.is_dir():
        if split is None:
            raise WagleError(f"{path} is a directory: name the split to read from it")
        candidates = [path / f"{split}{ext}" for ext in (".jsonl", ".json")]
        found = [c for c in candidates if c.is_file()]
        if not found:
            names = sorted(p.stem for p in path.glob("*.json*"))
            raise WagleError(f"no split {split!r} in {path}; available: {', '.join(names)}")
        records = _read_json_file(found[0])
    elif path.is_file():
        records = _read_json_file(path)
    elif not looks_like_hub_id(str(source)):
        raise WagleError(f"data file not found: {source}")
    else:
        records = _read_hub(str(source), split)
    if not records:
        raise WagleError(f"{source}{f' ({split})' if split else ''} holds no records")
    return records


def _read_json_file(path: Path) -> list[Record]:
    """A JSON array of objects, or JSONL (one object per line); errors name the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise WagleError(f"{path} is not UTF-8 text (JSON/JSONL expected)") from None
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise WagleError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
        numbered = list(enumerate(records, start=1))
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((number, json.loads(line)))
            except json.JSONDecodeError as err:
                raise WagleError(f"{path}: invalid JSON on line {number}: {err.msg}") from None
    for number, record in numbered:
        if not isinstance(record, dict):
            raise WagleError(f"{path}: record {number} is a {type(record).__name__}, not an object")
    return [record for _, record in numbered]


def _read_hub(repo_id: str, name: str | None) -> list[Record]:
    """A hub data set through ``datasets`` (configs and splits: ``wagle.data.hub``)."""
    from wagle.data.hub import read_hub

    return read_hub(repo_id, name)


def _named(source: str | Path, split: str | None) -> str:
    return f"{source} ({split})" if split and Path(source).is_dir() else str(source)


def _check_schema(records: list[Record], schema: dict[str, type], source: Any) -> None:
    for i, record in enumerate(records):
        for key, kind in schema.items():
            if not isinstance(record.get(key), kind):
                raise WagleError(
                    f"{source}: record {i + 1} needs field {key!r} of type {kind.__name__}; "
                    f"it has fields {sorted(record)}"
                )
            if problem := emptiness(record[key]):  # nothing to train on or to score
                raise WagleError(f"{source}: record {i + 1}: field {key!r} {problem}")
