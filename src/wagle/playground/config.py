"""The playground's configuration: a light module (no torch), so that its flags and
``wagle playground --help`` come back at once."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from wagle import config as cfg
from wagle.data import playground as benchmark
from wagle.errors import WagleError
from wagle.io import hash_config, wagle_home
from wagle.playground.model import SIZES

WORLD_FIELDS = ("size", "world_seed", "world_authors", "world_countries", "n_world_facts")
WORLD_FIELDS += ("vocab_size",)


@dataclass
class PlaygroundConfig:
    size: str = cfg.field("small", f"model size, one of {', '.join(SIZES)}")
    seed: int = cfg.field(
        0, "seed of the fictitious authors and of fine-tuning (the base model is shared)"
    )
    n_authors: int = cfg.field(
        200, "fictitious authors the target is fine-tuned on (forget10: the last 10%)"
    )
    qa_per_author: int = cfg.field(20, "QA pairs per fictitious author (at most 20)")
    n_holdout: int = cfg.field(20, "authors no model sees, for membership inference")
    world_seed: int = cfg.field(0, "seed of the base model's world")
    world_authors: int = cfg.field(50, "well-known authors of the base model's world")
    world_countries: int = cfg.field(100, "countries (and capitals) of the base model's world")
    n_world_facts: int = cfg.field(100, "records in each 'real world' evaluation set")
    retain_splits: list[str] = cfg.field(["forget10"], "forget splits to train a retain model for")
    fidelity: bool = cfg.field(
        True,
        "measure whether the build is a fair test of unlearning (utility figures against a "
        "random model's, the world kept, gradient ascent's damage, the retain model against "
        "holdout authors; about a minute); --no-fidelity skips them",
    )
    noise_floor: bool = cfg.field(
        False,
        "also fine-tune a second retain model (another seed) and measure forget quality's noise "
        "floor against the first (one more fine-tune: about a third of the build)",
    )
    epochs: int = cfg.field(0, "fine-tuning epochs; 0 uses the size's recipe")
    jobs: int = cfg.field(
        0, "models trained at once, one process each; 0 = one per CPU core (not in the cache key)"
    )
    vocab_size: int = cfg.field(2048, "BPE vocabulary size")

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise WagleError(f"unknown size {self.size!r}; choose one of: {', '.join(SIZES)}")
        forget_splits = [f"forget{p:02d}" for p in benchmark.FORGET_PERCENTS]
        if bad := set(self.retain_splits) - set(forget_splits):
            raise WagleError(f"unknown retain split(s) {sorted(bad)}; choose from {forget_splits}")
        self.fidelity |= self.noise_floor
        if self.fidelity and "forget10" not in self.retain_splits:
            raise WagleError(
                "the fidelity figures are measured on forget10: add it to --retain-splits "
                "or pass --no-fidelity"
            )
        if self.epochs < 0 or self.jobs < 0 or self.vocab_size < 300:
            raise WagleError("epochs and jobs must be ≥ 0, vocab_size ≥ 300")
        self.jobs = self.jobs or os.cpu_count() or 1
        self.benchmark_spec()  # validates the counts

    def benchmark_spec(self) -> benchmark.BenchmarkSpec:
        world = benchmark.WorldSpec(
            self.world_authors, self.world_countries, self.n_world_facts, self.world_seed
        )
        return benchmark.BenchmarkSpec(
            self.n_authors, self.qa_per_author, self.n_holdout, self.seed, world
        )

    def finetune_recipe(self):
        recipe = SIZES[self.size].finetune
        return dataclasses.replace(recipe, epochs=self.epochs) if self.epochs else recipe

    def base_directory(self) -> Path:
        """The base model's stage (world, tokenizer, base), shared by every seed."""
        key = {name: getattr(self, name) for name in WORLD_FIELDS} | self._recipe()
        return wagle_home() / "playground" / f"base-{self.size}-{hash_config(key)}"

    def directory(self) -> Path:
        # The size's training recipe is part of the key: a changed recipe never reuses a build.
        # What a build adds to the directory (retain models, fidelity) is not part of the key.
        extra = ("jobs", "retain_splits", "fidelity", "noise_floor")
        key = {k: v for k, v in cfg.to_dict(self).items() if k not in extra} | self._recipe()
        return wagle_home() / "playground" / f"{self.size}-seed{self.seed}-{hash_config(key)}"

    def _recipe(self) -> dict:
        from wagle.playground.train import RECIPE_VERSION  # torch: only when a build is asked

        return {"recipe": dataclasses.asdict(SIZES[self.size]) | {"version": RECIPE_VERSION}}
