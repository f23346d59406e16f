"""``wagle evaluate`` in-process on a tiny model and small local benchmarks in each format."""

from __future__ import annotations

import json
import math

import pytest

from wagle.cli import main
from wagle.data.playground import write

FAST = ["--max-new-tokens", "3", "--batch-size", "64"]


@pytest.fixture
def model_dir(tmp_path, tiny_model, tokenizer):
    path = tmp_path / "model"
    tiny_model(seed=5).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def playground_data(tmp_path_factory, micro_splits):
    path = tmp_path_factory.mktemp("playground") / "data"
    write(micro_splits, path)
    return str(path)


def as_text(records: list[dict]) -> list[dict]:
    return [{"text": f"{r['question']} {r['answer']}"} for r in records[:6]]


def without_paraphrase(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "paraphrased_answer"} for r in records]


def evaluate(model_dir, out, *flags) -> dict:
    assert main(["evaluate", "--model", model_dir, "--out", str(out), *FAST, *flags]) == 0
    return json.loads((out / "eval.json").read_text())


def test_playground_eval_writes_every_per_sample_value(
    model_dir, playground_data, tmp_path, capsys
):
    result = evaluate(model_dir, tmp_path / "ev", "--data", playground_data)
    assert (result["benchmark"], result["split"], result["model"]) == (
        "playground",
        "forget10",
        model_dir,
    )
    assert result["config"]["data"] == playground_data
    assert result["forget_quality"] is None
    figures = result["summary"]["figures"]
    nine = [figures[f"{s}.{m}"] for s in ("retain", "real_authors", "world_facts")
            for m in ("probability", "rouge_l_recall", "truth_ratio")]  # fmt: skip
    assert result["model_utility"] == result["summary"]["model_utility"]
    expected = 0.0 if min(nine) == 0 else 9 / sum(1 / x for x in nine)  # a 0 sinks it
    assert result["model_utility"] == pytest.approx(expected)
    assert set(result["sections"]) == {
        "forget", "retain", "real_authors", "world_facts", "mia", "memorisation"
    }  # fmt: skip
    forget = result["sections"]["forget"]
    assert forget["n"] == 20
    for name, values in forget["per_sample"].items():
        assert len(values) == 20, name
    assert len(result["sections"]["mia"]["per_sample"]["min_k"]["nonmembers"]) == 40
    assert set(result["sections"]["mia"]["aggregates"]) == {
        "loss_auc", "zlib_auc", "min_k_auc", "min_k_plus_plus_auc"
    }  # fmt: skip
    assert len(result["sections"]["memorisation"]["per_sample"]["extraction_strength"]) == 20
    out = capsys.readouterr().out
    assert "model_utility" in out and "eval.json" in out


def test_a_retain_eval_is_its_own_reference_with_forget_quality_one(
    model_dir, playground_data, tmp_path, capsys
):
    first = evaluate(model_dir, tmp_path / "a", "--data", playground_data)
    second = evaluate(
        model_dir, tmp_path / "b", "--data", playground_data, "--reference", str(tmp_path / "a")
    )
    assert second["forget_quality"] == 1.0
    assert second["summary"]["privleak"] == 0.0
    assert second["reference"]["path"] == str(tmp_path / "a" / "eval.json")
    assert second["sections"]["forget"]["per_sample"] == first["sections"]["forget"]["per_sample"]
    assert second["summary"]["reference_figures"] == first["summary"]["figures"]
    assert "retain ref." in capsys.readouterr().out  # the table shows the reference side by side


def test_reference_of_another_split_fails_before_loading_the_model(
    model_dir, playground_data, tmp_path, capsys
):
    (tmp_path / "eval.json").write_text(
        json.dumps({"benchmark": "playground", "split": "forget05", "sections": {}})
    )
    code = main(
        [
            "evaluate",
            "--model",
            model_dir,
            "--out",
            str(tmp_path / "o"),
            "--reference",
            str(tmp_path),
            "--data",
            playground_data,
        ]
    )
    assert code == 2
    assert "same benchmark and split" in capsys.readouterr().err


def test_tofu_layout_from_a_local_directory(model_dir, micro_splits, tmp_path):
    """TOFU file names; the real-world files lack paraphrased answers, as TOFU's may."""
    write(
        {
            "forget05_perturbed": micro_splits["forget05"],
            "retain_perturbed": micro_splits["retain90"][:12],
            "real_authors_perturbed": without_paraphrase(micro_splits["real_authors"]),
            "world_facts_perturbed": without_paraphrase(micro_splits["world_facts"]),
            "holdout05": [
                {"question": r["question"], "answer": r["answer"]} for r in micro_splits["holdout"]
            ],
        },
        tmp_path / "tofu",
    )
    result = evaluate(
        model_dir,
        tmp_path / "ev",
        "--benchmark",
        "tofu",
        "--split",
        "forget05",
        "--data",
        str(tmp_path / "tofu"),
    )
    assert result["sections"]["forget"]["source"] == "forget05_perturbed"
    assert result["sections"]["retain"]["n"] == 12
    assert result["sections"]["mia"]["nonmembers"] == "holdout05"


def test_mcq_file(model_dir, tmp_path):
    path = tmp_path / "mcq.jsonl"
    rows = [
        {"question": f"Question {i}?", "choices": ["yes", "no", "maybe"], "answer": i % 3}
        for i in range(6)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = evaluate(
        model_dir, tmp_path / "ev", "--benchmark", "mcq", "--data", str(path), "--mcq-style", "text"
    )
    assert result["sections"]["mcq"]["n"] == 6
    assert (
        result["summary"]["figures"]["mcq.accuracy"]
        == sum(result["sections"]["mcq"]["per_sample"]["correct"]) / 6
    )
    assert result["forget_quality"] is None and result["model_utility"] is None


def test_muse_directory(model_dir, micro_splits, tmp_path):
    root = tmp_path / "muse"
    write(
        {
            "forget": as_text(micro_splits["forget10"]),
            "holdout": as_text(micro_splits["holdout"]),
            "retain_qa": micro_splits["retain90"][:4],
        },
        root,
    )
    result = evaluate(
        model_dir,
        tmp_path / "ev",
        "--benchmark",
        "muse",
        "--data",
        str(root),
        "--prefix-tokens",
        "8",
        "--continuation-tokens",
        "4",
    )
    assert set(result["sections"]) == {
        "perplexity_forget", "verbmem", "memorisation", "knowmem_retain", "mia"
    }  # fmt: skip
    terms = result["summary"]["forget_efficacy_terms"]
    assert set(terms) == {"verbmem.rouge_l_f1", "mia.min_k_auc"}
    assert result["summary"]["utility"] == result["summary"]["figures"]["knowmem_retain.rouge_l_f1"]


def test_text_file_perplexity(model_dir, tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in ["One text.", "Another text here."]))
    result = evaluate(model_dir, tmp_path / "ev", "--benchmark", "text", "--data", str(path))
    text = result["sections"]["text"]
    nll, n = text["per_sample"]["nll"], text["per_sample"]["n_tokens"]
    corpus_nll = sum(x * k for x, k in zip(nll, n, strict=True)) / sum(n)  # token-weighted
    assert text["aggregates"]["nll"] == pytest.approx(corpus_nll)
    assert text["aggregates"]["perplexity"] == pytest.approx(math.exp(corpus_nll))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--benchmark", "nope"], "unknown benchmark 'nope'"),
        (["--benchmark", "mcq"], "needs --data"),
        (["--split", "forget33"], "unknown forget split"),
        (["--mink-k", "0"], "mink_k"),
    ],
)
def test_user_errors_exit_2_with_one_line(model_dir, tmp_path, capsys, flags, message):
    assert main(["evaluate", "--model", model_dir, "--out", str(tmp_path / "o"), *flags]) == 2
    assert message in capsys.readouterr().err.strip()
    assert not (tmp_path / "o" / "eval.json").exists()
