"""Bad inputs of the membership-attack, lm-eval, tracking and Hub options: one line on stderr,
exit 2, no traceback, no model loaded (rows E1–E10 of docs/bad-inputs.md; the helpers and the
``ws`` workspace, whose model loader fails the test, are those of test_bad_inputs.py)."""

from __future__ import annotations

from test_bad_inputs import evaluate, fails, unlearn, ws  # noqa: F401  (ws: a fixture)


def test_unknown_membership_attack(ws, capsys):  # noqa: F811
    fails(evaluate(ws, str(ws / "data"), "--mia-attacks", "loss", "bogus"), capsys,
          "unknown membership attack 'bogus'; choose from: loss, zlib, reference, gradnorm, "
          "min_k, min_k_plus_plus")  # fmt: skip


def test_reference_attack_without_a_reference_model(ws, capsys):  # noqa: F811
    fails(evaluate(ws, str(ws / "data"), "--mia-attacks", "reference"), capsys,
          "the reference attack needs --mia-reference-model (a model directory)")  # fmt: skip


def test_reference_model_that_does_not_exist(ws, capsys):  # noqa: F811
    flags = ("--mia-reference-model", str(ws / "nope"))
    fails(evaluate(ws, str(ws / "data"), *flags), capsys, "reference model not found: ")


def test_gradnorm_p_outside_one_two_inf(ws, capsys):  # noqa: F811
    fails(evaluate(ws, str(ws / "data"), "--gradnorm-p", "3"), capsys,
          "gradnorm_p must be 1, 2 or inf, got 3.0")  # fmt: skip


def test_unknown_tracker(ws, capsys):  # noqa: F811
    fails(unlearn(ws, "--report-to", "comet"), capsys,
          "unknown tracker 'comet' in report_to; choose from: tensorboard, wandb, mlflow, none")  # fmt: skip
