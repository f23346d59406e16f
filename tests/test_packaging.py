"""pyproject.toml states ranges; constraints.txt pins one tested set inside them."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parent.parent


def _pins() -> dict[str, Version]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(name): Version(version) for name, version in pairs}


def test_every_dependency_is_a_range_with_a_tested_pin_inside_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = project["dependencies"] + [r for group in extras.values() for r in group]
    pins = _pins()
    for text in requirements:
        requirement = Requirement(text)
        if requirement.name == project["name"]:  # dev pulls another extra: wagle[lm-eval]
            assert requirement.extras <= set(extras), text
            continue
        assert not any(s.operator == "==" for s in requirement.specifier), text
        pin = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pin, prereleases=True), (text, pin)


def test_the_tested_torch_is_the_cpu_build():
    assert str(_pins()["torch"]) == "2.13.0+cpu"
