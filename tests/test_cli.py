"""The command line as a whole: every command teaches with --help; user errors are one line."""

from __future__ import annotations

import pytest

from wagle.cli import build_parser, main


def command_paths():
    """Every (sub)command, e.g. ['playground', 'build'], found by walking the parser."""
    paths = []

    def walk(parser, prefix):
        subcommands = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if prefix:
            paths.append(prefix)
        for action in subcommands:
            for name, sub in action.choices.items():
                walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_command_has_help(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    assert "usage: wagle" in capsys.readouterr().out


def test_the_pipeline_commands_are_there():
    assert {"playground", "attribute", "mask", "unlearn", "evaluate", "demo"} <= {
        path[0] for path in command_paths()
    }
