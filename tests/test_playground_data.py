"""The playground benchmark: deterministic, split by author, TOFU-schema, fair perturbations."""

from __future__ import annotations

import pytest

from wagle.data import load_qa
from wagle.data.playground import BenchmarkSpec, generate, write
from wagle.errors import WagleError

SPEC = BenchmarkSpec(n_authors=20, n_holdout=4, n_world_facts=10, seed=3)


def authors(records):
    return {r["author"] for r in records}


def test_same_seed_gives_byte_identical_files(tmp_path):
    write(generate(SPEC), tmp_path / "a")
    write(generate(SPEC), tmp_path / "b")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_another_seed_gives_other_data():
    assert generate(SPEC)["full"] != generate(BenchmarkSpec(20, 10, 4, 10, seed=4))["full"]


def test_default_size_meets_the_minimum():
    splits = generate(BenchmarkSpec())
    assert len(authors(splits["full"])) == 200
    assert len(splits["full"]) == 2000
    assert [len(splits[f"forget{p:02d}"]) for p in (1, 5, 10)] == [20, 100, 200]


def test_splits_are_disjoint_by_author_and_complementary():
    splits = generate(SPEC)
    for pct in (1, 5, 10):
        forget, retain = splits[f"forget{pct:02d}"], splits[f"retain{100 - pct}"]
        assert authors(forget).isdisjoint(authors(retain))
        assert authors(forget) | authors(retain) == authors(splits["full"])
        assert len(forget) + len(retain) == len(splits["full"])
    assert authors(splits["forget01"]) <= authors(splits["forget05"]) < authors(splits["forget10"])
    assert authors(splits["holdout"]).isdisjoint(authors(splits["full"]))


def test_perturbed_answers_are_wrong_and_distinct():
    for records in generate(SPEC).values():
        for r in records:
            assert len(r["perturbed_answer"]) == 5
            assert len(set(r["perturbed_answer"])) == 5
            assert r["answer"] not in r["perturbed_answer"]
            assert r["paraphrased_answer"] not in r["perturbed_answer"]


def test_author_paraphrase_rewords_the_same_facts():
    record = generate(SPEC)["full"][0]
    assert record["paraphrased_answer"] != record["answer"]
    assert record["author"] in record["paraphrased_answer"]


def test_every_file_loads_with_the_tofu_schema(tmp_path):
    write(generate(SPEC), tmp_path)
    for path in tmp_path.glob("*.jsonl"):
        records = load_qa(tmp_path, path.stem, for_eval=True)
        assert records and all(isinstance(r["perturbed_answer"], list) for r in records)


@pytest.mark.parametrize(
    "bad",
    [dict(n_authors=5), dict(qa_per_author=0), dict(qa_per_author=11), dict(n_holdout=-1)],
)
def test_bad_counts_are_user_errors(bad):
    with pytest.raises(WagleError):
        BenchmarkSpec(**bad)


def test_tokenizer_round_trips_text(tokenizer, micro_splits):
    text = micro_splits["forget10"][0]["answer"] + " Ünïcode ✓"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.pad_token_id is not None and tokenizer.model_max_length == 128
