"""`wagle evaluate --help` names every benchmark and every metric it can write."""

from __future__ import annotations

import pytest

from wagle.cli import main
from wagle.evaluation.benchmarks import BENCHMARKS
from wagle.evaluation.memorisation import MEMORISATION_METRICS
from wagle.evaluation.mia import MIA_ATTACKS
from wagle.evaluation.qa import QA_METRICS


def test_help_lists_every_benchmark_and_metric(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    summary = ["forget_quality", "model_utility", "privleak", "forget_efficacy", "degenerate"]
    corpus = ["perplexity", "verbmem", "knowmem", "accuracy", "acc_norm"]
    qa = {"probability": "probability", "rouge_l_recall": "rouge_l_recall"} | {
        name: name for name in QA_METRICS
    }
    names = [*BENCHMARKS, *MIA_ATTACKS, *MEMORISATION_METRICS, *qa, *summary, *corpus]
    assert [name for name in names if name not in text] == []
