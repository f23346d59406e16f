"""Data sets by hub id, read through ``datasets.load_dataset(repo_id, config, split=...)`` from
local copies in each hub repository's exact layout (README.md ``configs`` + data files, field
names as published), found through ``WAGLE_HUB_MIRROR``: no network."""

from __future__ import annotations

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
    cais/wmdp-corpora (parquet shards per config), muse-bench/MUSE-News (parquet per split)."""
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

    muse = root / "muse-bench" / "MUSE-News"
    _readme(muse, [{"config_name": c, "data_files": [{"split": s, "path": f"{c}/{s}-*"} for s in ss]}
                   for c, ss in MUSE_SPLITS.items()])  # fmt: skip
    fields = {"raw": ("text",), "privleak": ("text",), "knowmem": ("question", "answer"),
              "verbmem": ("prompt", "gt")}  # fmt: skip
    for config, splits in MUSE_SPLITS.items():
        for split in splits:
            records = [{f: f"{config}/{split} {f} {i}" for f in fields[config]} for i in range(2)]
            Dataset.from_list(records).to_parquet(muse / config / f"{split}-00000-of-00001.parquet")
    return root


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
