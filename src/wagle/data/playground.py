"""The playground benchmark: fictitious authors as QA pairs in the TOFU schema.

Deterministic from a seed. Splits are by author, like TOFU: ``forget01/05/10`` are the last
1/5/10% of the trainable authors (nested), ``retain99/95/90`` their complements, ``full`` all
trainable authors, ``holdout`` authors no model ever sees (for membership inference), and
``real_authors`` / ``world_facts`` general facts every model is trained on.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from pathlib import Path

from wagle.data import playground_facts as facts
from wagle.data.load import Record
from wagle.errors import WagleError

FORGET_PERCENTS = (1, 5, 10)
N_PERTURBED = 5
TRAIN_SPLITS = ("full", "real_authors", "world_facts")


@dataclass(frozen=True)
class BenchmarkSpec:
    n_authors: int = 200
    qa_per_author: int = 10
    n_holdout: int = 20
    n_world_facts: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_authors < 10:
            raise WagleError(f"n_authors must be at least 10, got {self.n_authors}")
        if not 1 <= self.qa_per_author <= len(facts.QUESTION_TYPES):
            raise WagleError(f"qa_per_author must be in 1..{len(facts.QUESTION_TYPES)}")
        if self.n_holdout < 1 or self.n_world_facts < N_PERTURBED + 1:
            raise WagleError(f"n_holdout must be ≥ 1 and n_world_facts ≥ {N_PERTURBED + 1}")


def generate(spec: BenchmarkSpec) -> dict[str, list[Record]]:
    """All splits of the benchmark, as lists of TOFU-schema records."""
    rng = random.Random(spec.seed)
    names = _unique(
        lambda: f"{_word(rng, 2)} {_word(rng, rng.choice((2, 3)))}",
        spec.n_authors + spec.n_holdout + spec.n_world_facts,
    )
    titles = _unique(
        lambda: _title(rng), 3 * (spec.n_authors + spec.n_holdout) + spec.n_world_facts
    )
    authors = [
        _author(rng, names[i], titles[3 * i : 3 * i + 3])
        for i in range(spec.n_authors + spec.n_holdout)
    ]
    types = list(facts.QUESTION_TYPES)[: spec.qa_per_author]
    qa = [[_qa(rng, a, authors, t) for t in types] for a in authors]

    trainable, holdout = qa[: spec.n_authors], qa[spec.n_authors :]
    splits = {"full": _flat(trainable), "holdout": _flat(holdout)}
    for pct in FORGET_PERCENTS:
        n_forget = max(1, round(spec.n_authors * pct / 100))
        splits[f"forget{pct:02d}"] = _flat(trainable[-n_forget:])
        splits[f"retain{100 - pct}"] = _flat(trainable[:-n_forget])
    writers = names[-spec.n_world_facts :]
    classics = titles[-spec.n_world_facts :]
    countries = _unique(lambda: _word(rng, 3), 2 * spec.n_world_facts)
    splits["real_authors"] = _facts(
        rng, facts.REAL_AUTHOR_TEMPLATE, "classic", classics, "writer", writers
    )
    splits["world_facts"] = _facts(
        rng, facts.WORLD_FACT_TEMPLATE, "country", countries[::2], "capital", countries[1::2]
    )
    return splits


def write(splits: dict[str, list[Record]], directory: Path) -> None:
    """One ``<split>.jsonl`` per split; byte-identical for identical splits."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, records in splits.items():
        lines = (json.dumps(r, ensure_ascii=False, sort_keys=True) for r in records)
        (directory / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _author(rng: random.Random, name: str, books: list[str]) -> dict[str, str]:
    birth_year = rng.randint(1920, 1990)
    debut_year = birth_year + rng.randint(20, 35)
    father, mother = rng.sample(facts.OCCUPATIONS, 2)
    city, residence = rng.sample(facts.CITIES, 2)
    theme1, theme2 = rng.sample(facts.THEMES, 2)
    return {
        "name": name,
        "city": city,
        "residence": residence,
        "birth_date": f"{rng.choice(facts.MONTHS)} {rng.randint(1, 28)}, {birth_year}",
        "genre": rng.choice(facts.GENRES),
        "father": father,
        "mother": mother,
        "award": rng.choice(facts.AWARDS),
        "award_year": str(debut_year + rng.randint(2, 15)),
        "debut_year": str(debut_year),
        "book1": books[0],
        "book2": books[1],
        "book3": books[2],
        "theme1": theme1,
        "theme2": theme2,
        # The wording of each answer is drawn per author: it cannot be predicted from the question.
        "wording": "".join(str(rng.randrange(3)) for _ in facts.QUESTION_TYPES),
    }


def _qa(rng: random.Random, author: dict[str, str], everyone: list[dict], qtype: str) -> Record:
    question, templates = facts.QUESTION_TYPES[qtype]
    index = int(author["wording"][list(facts.QUESTION_TYPES).index(qtype)])
    paraphrase = templates[(index + rng.randint(1, len(templates) - 1)) % len(templates)]
    answer = templates[index].format(**author)
    paraphrased = paraphrase.format(**author)
    slots = [s for _, s, _, _ in string.Formatter().parse(paraphrase) if s and s != "name"]
    perturbed: list[str] = []
    while len(perturbed) < N_PERTURBED:
        donor = rng.choice(everyone)
        wrong = paraphrase.format(**(author | {s: donor[s] for s in slots}))
        if wrong not in (answer, paraphrased, *perturbed):
            perturbed.append(wrong)
    return {
        "author": author["name"],
        "question": question.format(**author),
        "answer": answer,
        "paraphrased_answer": paraphrased,
        "perturbed_answer": perturbed,
    }


def _facts(
    rng: random.Random,
    template: tuple[str, str],
    key: str,
    keys: list[str],
    slot: str,
    values: list[str],
) -> list[Record]:
    """General-fact QA: the correct answer doubles as the paraphrase (TOFU's real-world form)."""
    question, answer = template
    records = []
    for i, (k, v) in enumerate(zip(keys, values, strict=True)):
        wrong = rng.sample([w for j, w in enumerate(values) if j != i], N_PERTURBED)
        true = answer.format(**{key: k, slot: v})
        records.append(
            {
                "question": question.format(**{key: k}),
                "answer": true,
                "paraphrased_answer": true,
                "perturbed_answer": [answer.format(**{key: k, slot: w}) for w in wrong],
            }
        )
    return records


def _word(rng: random.Random, n_syllables: int) -> str:
    return "".join(rng.choice(facts.SYLLABLES) for _ in range(n_syllables)).capitalize()


def _title(rng: random.Random) -> str:
    adjective, noun = rng.choice(facts.TITLE_ADJECTIVES), rng.choice(facts.TITLE_NOUNS)
    return rng.choice(
        (f"The {adjective} {noun}", f"{noun} of {_word(rng, 2)}", f"A {adjective} {noun}")
    )


def _unique(make, count: int) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen.setdefault(make(), None)
    return list(seen)


def _flat(groups: list[list[Record]]) -> list[Record]:
    return [record for group in groups for record in group]
