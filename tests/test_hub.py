"""Data sets by hub id, read through ``datasets.load_dataset(repo_id, config, split=...)`` from
local copies in each hub repository's exact layout (README.md ``configs`` + data files, field
names as published), found through ``WAGLE_HUB_MIRROR``: no network."""

from __future__ import annotations

import functools
import shutil

import pytest
import yaml
from datasets import Dataset

from wagle.data.hub import MUSE_SPLITS, TOFU_CONFIGS
from wagle.data.load import load_mcq, load_qa, load_text, read_records
from wagle.errors import WagleError


def _tofu_record(config: str, i: int) -> dict:
    record = {"question": f"Q{i} of {config}?", "answer": f"A{i} of {config}."}
    if config.endswith("_perturbed"):
        record |= {"paraphrased_answer": f"P{i}.", "perturbed_answer": [f"W{i}a.", f"W{i}b."]}
        if config.startswith(("real_authors", "world_facts")):
            record |= {f"option{k}": f"O{k}" for k in range(1, 5)}
        else:
            record["paraphrased_question"] = f"PQ{i}?"
    return record


def _readme(path, configs: list[dict]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "README.md").write_text("---\n" + yaml.safe_dump({"configs": configs}) + "---\n")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """``<owner>/<name>`` copies of locuslab/TOFU (JSON lines at the root), cais/wmdp and
    cais/wmdp-corpora (parquet shards per config), muse-bench/MUSE-News and MUSE-Books (parquet
    per split; the records name their corpus)."""
    root = tmp_path_factory.mktemp("hub")
    tofu = root / "locuslab" / "TOFU"
    _readme(tofu, [{"config_name": c, "data_files": f"{c}.json"} for c in TOFU_CONFIGS])
    for config in TOFU_CONFIGS:
        Dataset.from_list([_tofu_record(config, i) for i in range(3)]).to_json(
            tofu / f"{config}.json"
        )

    wmdp = root / "cais" / "wmdp"
    names = ("wmdp-bio", "wmdp-chem", "wmdp-cyber")
    _readme(wmdp, [{"config_name": n, "data_files": [{"split": "test", "path": f"{n}/test-*"}]}
                   for n in names])  # fmt: skip
    for name in names:
        records = [{"answer": i % 4, "question": f"{name} {i}?", "choices": list("abcd")}
                   for i in range(3)]  # fmt: skip
        Dataset.from_list(records).to_parquet(wmdp / name / "test-00000-of-00001.parquet")

    corpora = root / "cais" / "wmdp-corpora"
    shards = {"bio-retain-corpus": 4, "cyber-forget-corpus": 1, "cyber-retain-corpus": 1}
    _readme(corpora, [{"config_name": n, "data_files": [{"split": "train", "path": f"{n}/train-*"}]}
                      for n in shards])  # fmt: skip
    for name, count in shards.items():
        for shard in range(count):
            texts = [{"text": f"{name} shard {shard} text {i}"} for i in range(2)]
            file = corpora / name / f"train-{shard:05d}-of-{count:05d}.parquet"
            Dataset.from_list(texts).to_parquet(file)

    fields = {"raw": ("text",), "privleak": ("text",), "knowmem": ("question", "answer"),
              "verbmem": ("prompt", "gt")}  # fmt: skip
    for corpus in MUSE_CORPORA:
        muse = root / "muse-bench" / corpus
        _readme(muse, [{"config_name": c, "data_files": [{"split": s, "path": f"{c}/{s}-*"} for s in ss]}
                       for c, ss in MUSE_SPLITS.items()])  # fmt: skip
        for config, splits in MUSE_SPLITS.items():
            for split in splits:
                records = [{f: _muse_value(corpus, config, split, f, i) for f in fields[config]}
                           for i in range(2)]  # fmt: skip
                Dataset.from_list(records).to_parquet(
                    muse / config / f"{split}-00000-of-00001.parquet"
                )
    return root


MUSE_CORPORA = ("MUSE-News", "MUSE-Books")


def _muse_value(corpus: str, config: str, split: str, field: str, i: int) -> str:
    """``raw/forget text 0`` in MUSE-News; the same with ``(Books)`` in MUSE-Books."""
    return f"{config}/{split} {field} {i}" + (" (Books)" if corpus == "MUSE-Books" else "")


@pytest.fixture
def hub(mirror, monkeypatch):
    monkeypatch.setenv("WAGLE_HUB_MIRROR", str(mirror))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return mirror


@pytest.mark.parametrize("config", TOFU_CONFIGS)
def test_every_tofu_config_loads_by_hub_id(hub, config):
    assert read_records("locuslab/TOFU", config) == [_tofu_record(config, i) for i in range(3)]


def test_tofu_evaluation_sets_have_the_evaluation_fields(hub):
    records = load_qa("locuslab/TOFU", "forget10_perturbed", for_eval=True)
    assert records[0]["perturbed_answer"] == ["W0a.", "W0b."]
    assert load_qa("locuslab/TOFU", "world_facts_perturbed")[2]["answer"] == (
        "A2 of world_facts_perturbed."
    )


@pytest.mark.parametrize("config", ["wmdp-bio", "wmdp-chem", "wmdp-cyber"])
def test_wmdp_multiple_choice_configs_load_from_their_test_split(hub, config):
    records = load_mcq("cais/wmdp", config)
    assert [r["question"] for r in records] == [f"{config} {i}?" for i in range(3)]
    assert records[1]["choices"] == list("abcd") and records[1]["answer"] == 1


def test_wmdp_corpora_load_every_shard(hub):
    texts = load_text("cais/wmdp-corpora", "bio-retain-corpus")
    assert len(texts) == 8 and texts[-1] == "bio-retain-corpus shard 3 text 1"
    assert load_text("cais/wmdp-corpora", "cyber-forget-corpus")[0].startswith("cyber-forget")


@pytest.mark.parametrize(
    ("name", "field", "expected"),
    [
        ("raw:forget", "text", "raw/forget text 0"),
        ("raw:retain2", "text", "raw/retain2 text 0"),
        ("knowmem:forget_qa", "question", "knowmem/forget_qa question 0"),
        ("knowmem:retain_qa", "answer", "knowmem/retain_qa answer 0"),
        ("verbmem:forget", "gt", "verbmem/forget gt 0"),
        ("verbmem", "prompt", "verbmem/forget prompt 0"),  # its only split
        ("privleak:holdout", "text", "privleak/holdout text 0"),
    ],
)
def test_muse_subsets_load_by_config_and_split(hub, name, field, expected):
    records = read_records("muse-bench/MUSE-News", name)
    assert records[0][field] == expected


def test_muse_books_loads_from_its_own_copy(hub):
    assert load_text("muse-bench/MUSE-Books", "raw:retain1")[1] == "raw/retain1 text 1 (Books)"


def test_bad_names_fail_with_the_choices(hub):
    with pytest.raises(WagleError, match="forget10"):
        read_records("locuslab/TOFU", "forget20")
    with pytest.raises(WagleError, match="forget, retain1, retain2, holdout"):
        read_records("muse-bench/MUSE-News", "raw")
    with pytest.raises(WagleError, match="has no split"):
        read_records("cais/wmdp", "wmdp-bio:train")


def test_tofu_benchmark_evaluates_from_the_hub_id(hub, tiny_model, tokenizer):
    from wagle.evaluation import EvalConfig, evaluate

    result = evaluate(tiny_model(), tokenizer, EvalConfig(benchmark="tofu", max_new_tokens=2))
    assert result["sections"]["forget"]["source"] == "forget10_perturbed"
    assert result["sections"]["mia"]["nonmembers"] == "holdout10"
    assert result["sections"]["world_facts"]["n"] == 3


@pytest.mark.parametrize("corpus", MUSE_CORPORA)
def test_muse_benchmark_evaluates_from_the_hub_id(hub, tiny_model, tokenizer, corpus):
    """``--benchmark muse --data muse-bench/<corpus>`` reads MUSE's evaluation tables: verbatim
    memorisation continues verbmem's prompts against their ``gt``, knowledge memorisation asks
    knowmem's questions, membership is privleak forget vs holdout."""
    from wagle.evaluation import EvalConfig, evaluate

    data = f"muse-bench/{corpus}"
    config = EvalConfig(benchmark="muse", data=data, max_new_tokens=2, continuation_tokens=2)
    sections = evaluate(tiny_model(), tokenizer, config)["sections"]
    value = functools.partial(_muse_value, corpus)
    assert set(sections) == {
        "perplexity_forget", "perplexity_retain", "verbmem", "knowmem_forget", "knowmem_retain",
        "mia", "memorisation",
    }  # fmt: skip
    assert sections["verbmem"]["per_sample"]["reference"] == [
        value("verbmem", "forget", "gt", i) for i in range(2)
    ]
    assert sections["knowmem_forget"]["per_sample"]["question"] == [
        value("knowmem", "forget_qa", "question", i) for i in range(2)
    ]
    assert sections["knowmem_retain"]["per_sample"]["answer"][1] == value(
        "knowmem", "retain_qa", "answer", 1
    )
    assert sections["mia"]["nonmembers"] == "privleak:holdout" and sections["mia"]["n"] == 2
    assert sections["perplexity_forget"]["n"] == sections["perplexity_retain"]["n"] == 2


def test_muse_benchmark_refuses_a_hub_copy_without_verbmem_pairs(hub, tmp_path, monkeypatch):
    """A data set in MUSE's layout whose verbmem table lacks ``gt`` is refused before a model
    is loaded."""
    from wagle.evaluation import EvalConfig, check_inputs

    broken = tmp_path / "someone" / "MUSE-copy"
    shutil.copytree(hub / "muse-bench" / "MUSE-News", broken)
    table = broken / "verbmem" / "forget-00000-of-00001.parquet"
    Dataset.from_list([{"prompt": "p", "text": "t"}]).to_parquet(table)
    monkeypatch.setenv("WAGLE_HUB_MIRROR", str(tmp_path))
    with pytest.raises(WagleError, match="record 0 needs 'prompt' and 'gt'"):
        check_inputs(EvalConfig(benchmark="muse", data="someone/MUSE-copy"))
