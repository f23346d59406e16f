"""The playground benchmark: deterministic, split by author, TOFU-schema, fair perturbations,
fictitious authors that are new to the base model's world."""

from __future__ import annotations

import re
import string

import pytest

from wagle.data import load_qa
from wagle.data.playground import BenchmarkSpec, WorldSpec, facts, generate, generate_world, write
from wagle.errors import WagleError

WORLD = WorldSpec(n_authors=20, n_countries=20, n_eval=10, seed=0)
SPEC = BenchmarkSpec(n_authors=20, n_holdout=4, seed=3, world=WORLD)


def authors(records):
    return {r["author"] for r in records}


def quoted_titles(text: str) -> set[str]:
    return set(re.findall(r"'([^']+)'", text))


def test_same_seed_gives_byte_identical_files(tmp_path):
    write(generate(SPEC), tmp_path / "a")
    write(generate(SPEC), tmp_path / "b")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_another_seed_gives_other_authors_in_the_same_world():
    other = generate(BenchmarkSpec(n_authors=20, n_holdout=4, seed=4, world=WORLD))
    ours = generate(SPEC)
    assert authors(other["full"]).isdisjoint(authors(ours["full"]))
    assert other["real_authors"] == ours["real_authors"]
    assert other["world_facts"] == ours["world_facts"]


def test_default_size_is_tofu_shaped():
    splits = generate(BenchmarkSpec())
    assert len(authors(splits["full"])) == 200 and len(splits["full"]) == 4000
    assert [len(splits[f"forget{p:02d}"]) for p in (1, 5, 10)] == [40, 200, 400]
    assert len(splits["holdout"]) == 400
    assert len(splits["real_authors"]) == len(splits["world_facts"]) == 100


def test_splits_are_disjoint_by_author_and_complementary():
    splits = generate(SPEC)
    for pct in (1, 5, 10):
        forget, retain = splits[f"forget{pct:02d}"], splits[f"retain{100 - pct}"]
        assert authors(forget).isdisjoint(authors(retain))
        assert authors(forget) | authors(retain) == authors(splits["full"])
        assert len(forget) + len(retain) == len(splits["full"])
    assert authors(splits["forget01"]) <= authors(splits["forget05"]) < authors(splits["forget10"])
    assert authors(splits["holdout"]).isdisjoint(authors(splits["full"]))


def test_fictitious_authors_are_new_to_the_world():
    world, splits = generate_world(WORLD), generate(SPEC)
    fictitious = splits["full"] + splits["holdout"]
    assert authors(fictitious).isdisjoint(world.names)
    titles = set().union(*(quoted_titles(r["answer"]) for r in fictitious))
    assert titles and titles.isdisjoint(world.titles)


def test_perturbed_answers_are_wrong_and_distinct():
    for records in generate(SPEC).values():
        for r in records:
            assert len(r["perturbed_answer"]) == 5
            assert len(set(r["perturbed_answer"])) == 5
            assert r["answer"] not in r["perturbed_answer"]
            assert r["paraphrased_answer"] not in r["perturbed_answer"]


def test_perturbed_titles_belong_to_no_author():
    """A wrong title that some author has would be familiar to a model that learned that author
    (the retain model would prefer the perturbed answer: DESIGN.md §4)."""
    world, splits = generate_world(WORLD), generate(SPEC)
    everyone = splits["full"] + splits["holdout"]
    known = set(world.titles).union(*(quoted_titles(r["answer"]) for r in everyone))
    wrong = set().union(*(quoted_titles(p) for r in everyone for p in r["perturbed_answer"]))
    assert wrong and wrong.isdisjoint(known)


def test_every_wording_of_a_question_restates_the_same_facts():
    for _, templates in facts.QUESTION_TYPES.values():
        slots = [{s for _, s, _, _ in string.Formatter().parse(t) if s} for t in templates]
        assert len(templates) == 3 and all(s == slots[0] for s in slots)


def test_perturbed_answers_keep_the_paraphrase_wording():
    for r in generate(SPEC)["full"]:
        wording = _templates(r["paraphrased_answer"])
        assert len(wording) == 1
        assert all(_templates(wrong) == wording for wrong in r["perturbed_answer"])


def test_real_world_answers_are_entities_of_one_kind():
    world = generate_world(WORLD)
    capitals = {
        r["answer"] for r in world.corpus if r["question"].startswith("What is the capital")
    }
    for r in world.real_authors:
        assert r["answer"] in world.names and r["paraphrased_answer"] == r["answer"]
        assert set(r["perturbed_answer"]) <= world.names - {r["answer"]}
    for r in world.world_facts:
        assert set(r["perturbed_answer"]) <= capitals - {r["answer"]}


def test_the_base_corpus_holds_the_real_world_questions():
    world = generate_world(WORLD)
    asked = {(r["question"], r["answer"]) for r in world.corpus}
    assert all(
        (r["question"], r["answer"]) in asked for r in world.real_authors + world.world_facts
    )


def test_answers_restate_the_author_as_tofu_answers_do():
    for record in generate(SPEC)["full"]:
        assert record["author"] in record["question"]
        assert record["paraphrased_answer"] != record["answer"]
        answers = [record["answer"], record["paraphrased_answer"], *record["perturbed_answer"]]
        assert all(record["author"] in a for a in answers)


def test_every_file_loads_with_the_tofu_schema(tmp_path):
    write(generate(SPEC), tmp_path)
    for path in tmp_path.glob("*.jsonl"):
        records = load_qa(tmp_path, path.stem, for_eval=True)
        assert records and all(isinstance(r["perturbed_answer"], list) for r in records)


@pytest.mark.parametrize(
    "bad",
    [dict(n_authors=5), dict(qa_per_author=0), dict(qa_per_author=21), dict(n_holdout=0)],
)
def test_bad_counts_are_user_errors(bad):
    with pytest.raises(WagleError):
        BenchmarkSpec(**bad)


@pytest.mark.parametrize("bad", [dict(n_authors=5), dict(n_eval=0), dict(n_eval=400)])
def test_bad_world_counts_are_user_errors(bad):
    with pytest.raises(WagleError):
        WorldSpec(**bad)


def test_tokenizer_round_trips_text(tokenizer, micro_splits):
    text = micro_splits["forget10"][0]["answer"] + " Ünïcode ✓"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.pad_token_id is not None and tokenizer.model_max_length == 128


def _templates(text: str) -> set[str]:
    """The answer templates that ``text`` is an instance of."""
    return {
        t
        for _, templates in facts.QUESTION_TYPES.values()
        for t in templates
        if re.fullmatch(re.sub(r"\\{\w+\\}", ".+", re.escape(t)), text)
    }
