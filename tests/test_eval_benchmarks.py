"""Benchmark layouts: which splits a QA benchmark reads, and the fixed retain subset."""

from __future__ import annotations

from wagle.evaluation.benchmarks import BENCHMARKS, evenly_spaced, resolve
from wagle.evaluation.config import EvalConfig


def test_retain_subset_takes_evenly_spaced_records():
    """4 of 10 records: indices i·10 // 4 = 0, 2, 5, 7."""
    assert evenly_spaced(list(range(10)), 4) == [0, 2, 5, 7]


def test_retain_subset_keeps_a_small_split_whole():
    assert evenly_spaced(list(range(3)), 400) == [0, 1, 2]


def test_qa_benchmarks_default_to_forget10_and_others_to_no_split():
    assert resolve(EvalConfig())[1].split == "forget10"
    assert resolve(EvalConfig(benchmark="tofu"))[1].split == "forget10"
    assert resolve(EvalConfig(benchmark="mcq"))[1].split == ""
    assert set(BENCHMARKS) == {"playground", "tofu", "mcq", "muse", "text", "lm-eval"}


def test_one_token_statistics_pass_serves_mia_and_memorisation(
    tmp_path, tiny_model, tokenizer, micro_splits, monkeypatch
):
    """The playground benchmark runs ``token_statistics`` once over the forget answers and once
    over the holdout ones; its MIA and memorisation sections equal those computed on their
    own (each with its own pass over the forget answers)."""
    import wagle.evaluation.benchmarks as benchmarks
    import wagle.evaluation.memorisation as memorisation_module
    import wagle.evaluation.mia as mia_module
    from wagle.data.playground import write
    from wagle.evaluation.memorisation import memorisation
    from wagle.evaluation.mia import membership_inference
    from wagle.evaluation.token_stats import token_statistics

    write(micro_splits, tmp_path / "data")
    config = resolve(EvalConfig(data=str(tmp_path / "data"), max_new_tokens=2))[1]
    model = tiny_model(seed=4).eval()
    passes = []

    def counted(model, examples, *args):
        passes.append(len(examples))
        return token_statistics(model, examples, *args)

    for module in (benchmarks, mia_module, memorisation_module):
        monkeypatch.setattr(module, "token_statistics", counted)
    sections = BENCHMARKS["playground"].run(model, tokenizer, config)
    forget, holdout = micro_splits["forget10"], micro_splits["holdout"]
    assert passes == [len(forget), len(holdout)]
    alone = memorisation(model, tokenizer, forget, batch_size=config.batch_size)
    assert sections["memorisation"] == alone
    mia = membership_inference(model, tokenizer, forget, holdout, batch_size=config.batch_size)
    for name, section in sections["mia"]["per_sample"].items():
        assert section == {"members": mia[name]["members"], "nonmembers": mia[name]["nonmembers"]}
