"""Author profiles and their QA pairs in the TOFU schema, for the world and the fictitious set.

Every answer restates two or three facts, and each question type has several wordings chosen
per author, so a model that never saw an author cannot guess the answer from the question.
Perturbed answers keep the paraphrase's wording and redraw every fact slot **from the pool the
true values come from** (a fresh draw of the profile generator for each perturbed answer, titles
that no author has), never another author's combination: to a model that never saw the author,
the true and the perturbed answers are equally unfamiliar (DESIGN.md §4).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from wagle.data.load import Record
from wagle.data.playground import facts

N_PERTURBED = 5
BOOKS = ("book1", "book2", "book3")


def profile_facts(rng: random.Random) -> dict[str, str]:
    """One draw of every fact of a profile but the name and the books."""
    birth_year = rng.randint(1920, 1990)
    debut_year = birth_year + rng.randint(20, 35)
    father, mother = rng.sample(facts.OCCUPATIONS, 2)
    city, residence = rng.sample(facts.CITIES, 2)
    theme1, theme2 = rng.sample(facts.THEMES, 2)
    return {
        "city": city,
        "residence": residence,
        "birth_date": f"{rng.choice(facts.MONTHS)} {rng.randint(1, 28)}, {birth_year}",
        "genre": rng.choice(facts.GENRES),
        "father": father,
        "mother": mother,
        "award": rng.choice(facts.AWARDS),
        "award_year": str(debut_year + rng.randint(2, 15)),
        "debut_year": str(debut_year),
        "theme1": theme1,
        "theme2": theme2,
    }


def author(rng: random.Random, name: str, books: list[str]) -> dict[str, str]:
    person = {"name": name, **profile_facts(rng), **dict(zip(BOOKS, books, strict=True))}
    # The wording of each answer is drawn per author: it cannot be predicted from the question.
    person["wording"] = "".join(str(rng.randrange(3)) for _ in facts.QUESTION_TYPES)
    return person


def qa(
    rng: random.Random, person: dict[str, str], qtype: str, fresh_title: Callable[[], str]
) -> Record:
    """One QA record of ``person``; ``fresh_title`` draws a title that no author has."""
    question, templates = facts.QUESTION_TYPES[qtype]
    index = int(person["wording"][list(facts.QUESTION_TYPES).index(qtype)])
    paraphrase = templates[(index + rng.randint(1, len(templates) - 1)) % len(templates)]
    answer = templates[index].format(**person)
    paraphrased = paraphrase.format(**person)
    slots = [s for _, s, _, _ in string.Formatter().parse(paraphrase) if s and s != "name"]
    perturbed: list[str] = []
    while len(perturbed) < N_PERTURBED:
        phantom = profile_facts(rng)  # a fresh draw: nobody's combination
        draws = {s: fresh_title() if s in BOOKS else phantom[s] for s in slots}
        wrong = paraphrase.format(**(person | draws))
        if wrong not in (answer, paraphrased, *perturbed):
            perturbed.append(wrong)
    return {
        "author": person["name"],
        "question": question.format(**person),
        "answer": answer,
        "paraphrased_answer": paraphrased,
        "perturbed_answer": perturbed,
    }


def entity_qa(question: str, answer: str, others: list[str], rng: random.Random) -> Record:
    """TOFU's real-world shape: the answer is an entity, the perturbed answers are other
    entities of the same kind, and the correct answer doubles as the paraphrase."""
    return {
        "question": question,
        "answer": answer,
        "paraphrased_answer": answer,
        "perturbed_answer": rng.sample(others, N_PERTURBED),
    }


def word(rng: random.Random, n_syllables: int) -> str:
    return "".join(rng.choice(facts.SYLLABLES) for _ in range(n_syllables)).capitalize()


def place(rng: random.Random) -> str:
    return rng.choice(facts.PLACE_STARTS) + rng.choice(facts.PLACE_ENDS)


def person_name(rng: random.Random) -> str:
    return f"{word(rng, 2)} {word(rng, rng.choice((2, 3)))}"


def title(rng: random.Random) -> str:
    adjective, noun = rng.choice(facts.TITLE_ADJECTIVES), rng.choice(facts.TITLE_NOUNS)
    return rng.choice(
        (f"The {adjective} {noun}", f"{noun} of {word(rng, 2)}", f"A {adjective} {noun}")
    )


def unique(make: Callable[[], str], count: int, taken: set[str] = frozenset()) -> list[str]:
    """``count`` distinct values of ``make()``, none in ``taken``, in the order drawn."""
    seen: dict[str, None] = {}
    while len(seen) < count:
        value = make()
        if value not in taken:
            seen.setdefault(value, None)
    return list(seen)
