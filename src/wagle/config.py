"""Configs are dataclasses: defaults and help live on the fields, YAML overrides them, and
command-line flags are generated from the same fields.

Precedence: field default < YAML file (``--config``) < explicit command-line flag.
Validation belongs in each dataclass's ``__post_init__`` and raises ``WagleError``, so a bad
value fails before any model is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from wagle.errors import WagleError

C = TypeVar("C")


def field(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a help string (shown by ``--help``)."""
    if isinstance(default, list | dict):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs
        )
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(element type, is_list) of ``int``, ``float | None``, ``list[float]`` and the like."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one ``--flag-name`` per field of the dataclass ``cls``; unset flags stay absent."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} options")
    for f in dataclasses.fields(cls):
        kind, is_list = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        # argparse %-formats help strings: a literal % (as in "Min-K%") must be doubled.
        help_text = f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")
        if kind is bool:
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            group.add_argument(
                flag,
                dest=f.name,
                type=kind,
                nargs="+" if is_list else None,
                default=argparse.SUPPRESS,
                help=help_text,
                metavar=f.name.upper(),
            )


def load_yaml(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML mapping of field overrides; a user error if it is missing or malformed."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise WagleError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise WagleError(f"config file {path} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise WagleError(f"config file {path} must hold a mapping of option: value")
    return data


def build(cls: type[C], *sources: dict[str, Any] | argparse.Namespace) -> C:
    """Build ``cls`` from defaults overridden by each source in turn (dicts or namespaces)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for source in sources:
        items = vars(source) if isinstance(source, argparse.Namespace) else source
        unknown = set(items) - names if isinstance(source, dict) else set()
        if unknown:
            raise WagleError(
                f"unknown {cls.__name__} option(s) {sorted(unknown)}; valid: {sorted(names)}"
            )
        values.update({k.replace("-", "_"): v for k, v in items.items() if k in names})
    try:
        return cls(**values)
    except TypeError as err:
        raise WagleError(f"invalid {cls.__name__}: {err}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON/YAML-friendly dict of a config dataclass (paths become strings)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}
