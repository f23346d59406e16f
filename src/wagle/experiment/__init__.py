"""Experiments: a recipe's grid of (method, mask, ratio, seed) cells, resumable, with the
automatic ratio search. ``run_experiment(load_recipe(path), out)``; ``wagle report`` reads
what it wrote."""

from wagle.experiment.auto_ratio import Probe, RatioSearch, search_ratio
from wagle.experiment.cells import Cell, finished_results, grid
from wagle.experiment.recipe import ExperimentRecipe, load_recipe

__all__ = [
    "Cell",
    "ExperimentRecipe",
    "Probe",
    "RatioSearch",
    "finished_results",
    "grid",
    "load_recipe",
    "run_experiment",
    "search_ratio",
]


def run_experiment(*args, **kwargs):
    """See ``wagle.experiment.runner.run_experiment`` (imported on use: it loads torch)."""
    from wagle.experiment.runner import run_experiment as run

    return run(*args, **kwargs)
