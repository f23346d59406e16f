"""The experiment recipes ship inside the package: `wagle demo` and `wagle run playground` work
from any directory after `pip install`, not only in a checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import wagle
from wagle.cli import main
from wagle.experiment.recipe import load_recipe, resolve_recipe, shipped_recipes

ROOT = Path(__file__).parent.parent
PACKAGE = Path(wagle.__file__).parent


def test_shipped_recipes_are_valid_and_live_in_the_package():
    shipped = shipped_recipes()
    assert {"playground", "playground_study"} <= set(shipped)
    for path in shipped.values():
        assert path.parent == PACKAGE / "recipes"
        load_recipe(path)
    demo = load_recipe("playground")
    assert list(demo.methods) == ["npo"]
    assert demo.masks == ["dense", "wagle", "random"] and demo.ratios == [0.8]


def test_a_recipe_is_named_from_any_directory_and_a_file_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_recipe("playground") == PACKAGE / "recipes" / "playground.yaml"
    (tmp_path / "playground").write_text("seeds: [3]\n")  # a local file of that name wins
    assert load_recipe("playground").seeds == [3]


def test_an_unknown_recipe_is_one_line_listing_the_shipped_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "nosuch", "--out", "out"]) == 2
    err = capsys.readouterr().err
    assert "recipe not found: nosuch" in err and "playground" in err
    assert not (tmp_path / "out").exists()


def test_demo_runs_the_shipped_recipe_from_an_empty_directory(tmp_path, monkeypatch):
    """`wagle demo` outside a checkout: the recipe comes from the package (the playground
    build, the experiment and the report are stood in for: they have their own tests)."""
    import wagle.cli.playground
    import wagle.experiment
    import wagle.playground
    import wagle.report

    monkeypatch.chdir(tmp_path)
    ran = {}
    monkeypatch.setattr(wagle.playground, "build_playground", lambda config: {})
    monkeypatch.setattr(wagle.cli.playground, "print_info", lambda info: None)
    monkeypatch.setattr(
        wagle.experiment, "run_experiment", lambda recipe, out, say: ran.update(recipe=recipe)
    )
    monkeypatch.setattr(wagle.report, "write_report", lambda root: pytest.skip("reached"))
    with pytest.raises(pytest.skip.Exception, match="reached"):
        main(["demo", "--examples", "0"])
    assert ran["recipe"] == load_recipe(PACKAGE / "recipes" / "playground.yaml")


def test_the_wheel_carries_the_recipes_and_configs_keeps_no_copy(tmp_path):
    """One copy of each recipe: the package's, which the wheel installs byte for byte."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("*.egg-info", "__pycache__")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("wagle-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name, path in shipped_recipes().items():
            assert archive.read(f"wagle/recipes/{name}.yaml") == path.read_bytes()
    assert not list((ROOT / "configs").glob("experiment_*.yaml"))
