"""The base model's world: well-known authors and countries, and TOFU-shaped real-world sets.

The base model is pretrained on ``World.corpus``: the profile QA of every world author (the same
question types and wordings as the fictitious authors'), "Who wrote the classic X?" for each of
their first two books, and two questions per country (its capital; whose capital a city is). So the
fictitious authors a target is later fine-tuned on are new people in a world the model already
knows, as TOFU's authors are to Llama.

The real-world evaluation sets are the first ``n_eval`` classic and capital questions, shaped like
TOFU's: the answer is the entity and the perturbed answers are five other entities of the same
kind, all equally familiar to the model; only knowing the fact tells them apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from wagle.data.load import Record
from wagle.data.playground import facts
from wagle.data.playground.authors import (
    N_PERTURBED,
    author,
    entity_qa,
    person_name,
    place,
    qa,
    title,
    unique,
    word,
)
from wagle.errors import WagleError

CLASSIC = "Who wrote the classic '{title}'?"
CAPITAL = "What is the capital of {country}?"
CAPITAL_OF = "{capital} is the capital of which country?"


@dataclass(frozen=True)
class WorldSpec:
    n_authors: int = 50
    n_countries: int = 100
    n_eval: int = 100  # records in each real-world evaluation set
    seed: int = 0

    def __post_init__(self) -> None:
        smallest = min(2 * self.n_authors, self.n_countries)  # two classics per author
        if min(self.n_authors, self.n_countries) <= N_PERTURBED or not 1 <= self.n_eval <= smallest:
            raise WagleError(
                f"the world needs more than {N_PERTURBED} authors and countries, and "
                f"1 ≤ n_eval ≤ min(2 × authors, countries); got {self}"
            )


@dataclass(frozen=True)
class World:
    corpus: list[Record]  # what the base model is pretrained on
    real_authors: list[Record]  # evaluation sets, part of the corpus
    world_facts: list[Record]
    names: frozenset[str]  # taken: fictitious authors get other names and titles
    titles: frozenset[str]


def generate_world(spec: WorldSpec) -> World:
    """The world of ``spec``, deterministic from its seed (independent of any other seed)."""
    rng = random.Random(f"world-{spec.seed}")
    names = unique(lambda: person_name(rng), spec.n_authors)
    titles = unique(lambda: title(rng), 3 * spec.n_authors)
    people = [author(rng, name, titles[3 * i : 3 * i + 3]) for i, name in enumerate(names)]
    taken = set(titles)

    def fresh_title() -> str:
        return unique(lambda: title(rng), 1, taken)[0]

    profiles = [qa(rng, p, qtype, fresh_title) for p in people for qtype in facts.QUESTION_TYPES]
    classics = [
        entity_qa(CLASSIC.format(title=p[book]), p["name"], _others(names, p["name"]), rng)
        for book in ("book1", "book2")
        for p in people
    ]
    countries = unique(lambda: word(rng, 3), spec.n_countries, set(names))
    capitals = unique(lambda: place(rng), spec.n_countries)
    capital_of = [
        entity_qa(CAPITAL.format(country=c), k, _others(capitals, k), rng)
        for c, k in zip(countries, capitals, strict=True)
    ]
    country_of = [
        entity_qa(CAPITAL_OF.format(capital=k), c, _others(countries, c), rng)
        for c, k in zip(countries, capitals, strict=True)
    ]
    return World(
        corpus=profiles + classics + capital_of + country_of,
        real_authors=classics[: spec.n_eval],
        world_facts=capital_of[: spec.n_eval],
        names=frozenset(names),
        titles=frozenset(titles),
    )


def _others(values: list[str], value: str) -> list[str]:
    return [v for v in values if v != value]
