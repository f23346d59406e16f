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


@dataclass
class PlaygroundConfig:
    size: str = cfg.field("small", f"model size, one of {', '.join(SIZES)}")
    seed: int = cfg.field(0, "seed of the data generator and of model training")
    n_authors: int = cfg.field(200, "fictitious authors that the target model is trained on")
    qa_per_author: int = cfg.field(10, "QA pairs per author (at most 10)")
    n_holdout: int = cfg.field(20, "authors no model sees, for membership inference")
    n_world_facts: int = cfg.field(100, "records in each 'real world' set")
    retain_splits: list[str] = cfg.field(["forget10"], "forget splits to train a retain model for")
    epochs: int = cfg.field(0, "training epochs; 0 uses the size's default")
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
        if self.epochs < 0 or self.jobs < 0 or self.vocab_size < 300:
            raise WagleError("epochs and jobs must be ≥ 0, vocab_size ≥ 300")
        self.jobs = self.jobs or os.cpu_count() or 1
        self.benchmark_spec()  # validates the counts

    def benchmark_spec(self) -> benchmark.BenchmarkSpec:
        return benchmark.BenchmarkSpec(
            self.n_authors, self.qa_per_author, self.n_holdout, self.n_world_facts, self.seed
        )

    def directory(self) -> Path:
        # The size's training recipe is part of the key: a changed recipe never reuses a build.
        from wagle.playground.train import RECIPE_VERSION  # torch: only when a build is asked

        recipe = dataclasses.asdict(SIZES[self.size]) | {"version": RECIPE_VERSION}
        key = {k: v for k, v in cfg.to_dict(self).items() if k != "jobs"} | {"recipe": recipe}
        return wagle_home() / "playground" / f"{self.size}-seed{self.seed}-{hash_config(key)}"
