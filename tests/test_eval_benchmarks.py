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
