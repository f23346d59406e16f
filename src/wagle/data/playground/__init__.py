"""The playground benchmark: fictitious authors as QA pairs in the TOFU schema.

Deterministic from its seeds. The fictitious authors are new people in the base model's world
(``world``): their names and titles are not the world's. Splits are by author, like TOFU:
``forget01/05/10`` are the last 1/5/10% of the fictitious authors (nested), ``retain99/95/90``
their complements, ``full`` all of them, ``holdout`` authors that no model ever sees (membership
inference; the retain model's forget figures should look like its holdout figures), and
``real_authors`` / ``world_facts`` the world's real-world evaluation sets.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from wagle.data.load import Record
from wagle.data.playground import facts
from wagle.data.playground.authors import N_PERTURBED, author, person_name, qa, title, unique
from wagle.data.playground.world import World, WorldSpec, generate_world
from wagle.errors import WagleError

__all__ = ["FORGET_PERCENTS", "N_PERTURBED", "BenchmarkSpec", "World", "WorldSpec"]
__all__ += ["generate", "generate_world", "write"]

FORGET_PERCENTS = (1, 5, 10)


@dataclass(frozen=True)
class BenchmarkSpec:
    n_authors: int = 200
    qa_per_author: int = 20
    n_holdout: int = 20
    seed: int = 0
    world: WorldSpec = field(default_factory=WorldSpec)

    def __post_init__(self) -> None:
        if self.n_authors < 10:
            raise WagleError(f"n_authors must be at least 10, got {self.n_authors}")
        if not 1 <= self.qa_per_author <= len(facts.QUESTION_TYPES):
            raise WagleError(f"qa_per_author must be in 1..{len(facts.QUESTION_TYPES)}")
        if self.n_holdout < 1:
            raise WagleError(f"n_holdout must be ≥ 1, got {self.n_holdout}")


def generate(spec: BenchmarkSpec, world: World | None = None) -> dict[str, list[Record]]:
    """All splits of the benchmark, as lists of TOFU-schema records."""
    world = world or generate_world(spec.world)
    rng = random.Random(spec.seed)
    count = spec.n_authors + spec.n_holdout
    names = unique(lambda: person_name(rng), count, world.names)
    titles = unique(lambda: title(rng), 3 * count, world.titles)
    taken = world.titles | set(titles)

    def fresh_title() -> str:
        return unique(lambda: title(rng), 1, taken)[0]

    types = list(facts.QUESTION_TYPES)[: spec.qa_per_author]
    people = [author(rng, name, titles[3 * i : 3 * i + 3]) for i, name in enumerate(names)]
    qas = [[qa(rng, p, qtype, fresh_title) for qtype in types] for p in people]

    trainable, holdout = qas[: spec.n_authors], qas[spec.n_authors :]
    splits = {"full": _flat(trainable), "holdout": _flat(holdout)}
    for pct in FORGET_PERCENTS:
        n_forget = max(1, round(spec.n_authors * pct / 100))
        splits[f"forget{pct:02d}"] = _flat(trainable[-n_forget:])
        splits[f"retain{100 - pct}"] = _flat(trainable[:-n_forget])
    return splits | {"real_authors": world.real_authors, "world_facts": world.world_facts}


def write(splits: dict[str, list[Record]], directory: Path) -> None:
    """One ``<split>.jsonl`` per split; byte-identical for identical splits."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, records in splits.items():
        lines = (json.dumps(r, ensure_ascii=False, sort_keys=True) for r in records)
        (directory / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _flat(groups: list[list[Record]]) -> list[Record]:
    return [record for group in groups for record in group]
