"""Model cards and the Hub upload: `wagle unlearn` writes README.md with huggingface_hub's
ModelCard (base model, method and options, mask, recipe, evaluation with its retain reference,
unselected-entries checksum, version); `--push-to-hub` uploads exactly the model, the mask and
the card (the Hub API is intercepted: no network)."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import HfApi, ModelCard
from transformers import AutoModelForCausalLM

from wagle import __version__
from wagle.attribution.masks import load_mask, save_mask
from wagle.cli import main
from wagle.data.playground import write
from wagle.modelcard import unselected_digest

MASK_META = {"method": "wagle", "ratio": 0.5, "gamma": 1e-6}


@pytest.fixture
def workspace(tmp_path, saved_inputs, random_mask):
    """Tiny target, forget/retain files and a seeded half mask of it (``mask.safetensors``)."""
    model = saved_inputs(n_retain=8)
    save_mask(random_mask(model), tmp_path / "mask.safetensors", metadata=MASK_META)
    return tmp_path


def _unlearn(ws, *extra: str) -> list[str]:
    return [
        "unlearn", "--model", str(ws / "model"), "--forget", str(ws / "forget.jsonl"),
        "--retain", str(ws / "retain.jsonl"), "--out", str(ws / "out"), "--method", "npo",
        "--mask", str(ws / "mask.safetensors"), "--max-steps", "2", "--batch-size", "2",
        "--gradient-accumulation-steps", "1", "--learning-rate", "1e-2", "--max-length", "48",
        "--no-progress", *extra,
    ]  # fmt: skip


def test_the_card_records_the_run_and_its_checksum_holds(
    workspace, tiny_model, tokenizer, micro_splits
):
    """The card's checksum is the digest of the entries outside the mask, equal in the base
    model and the unlearned one; the evaluation is the selected point, against its reference."""
    write(micro_splits, workspace / "data")
    tiny_model(seed=7).save_pretrained(workspace / "retain")
    tokenizer.save_pretrained(workspace / "retain")
    evaluate = ["evaluate", "--model", str(workspace / "retain"), "--data", str(workspace / "data")]
    assert main([*evaluate, "--out", str(workspace / "ref"), "--max-new-tokens", "4"]) == 0
    eval_flags = ["--eval-reference", str(workspace / "ref"), "--eval-every", "1",
                  "--eval-forget-size", "4", "--eval-retain-size", "4", "--utility-floor", "0"]  # fmt: skip
    assert main(_unlearn(workspace, *eval_flags)) == 0
    out = workspace / "out"
    card = ModelCard.load(out / "README.md")
    assert card.data.tags == ["wagle", "unlearning", "unlearning-npo"]
    assert card.data.library_name == "transformers" and card.data.base_model is None  # local
    base = AutoModelForCausalLM.from_pretrained(workspace / "model")
    unlearned = AutoModelForCausalLM.from_pretrained(out)
    mask = load_mask(workspace / "mask.safetensors", base)
    digest = unselected_digest(base, mask)
    assert digest == unselected_digest(unlearned, mask) and digest.startswith("sha256:")
    assert unselected_digest(base, None) is None  # dense: nothing to check
    run = json.loads((out / "run_config.json").read_text())
    selected = run["selected"]
    text = card.text
    for expected in (
        f"| base model | `{workspace / 'model'}` |",
        f"| unselected-entries checksum | `{digest}` |",
        f"| wagle version | {__version__} |",
        "| method | npo |",
        "| method options | retain_weight = 1.0, retain_loss = nll, beta = 0.1, "
        "reference = precomputed |",
        f"| mask | score wagle, ratio 0.5, γ 1e-06; file `mask.safetensors`, fingerprint "
        f"`{run['mask']['fingerprint']}` |",
        f"From the selected checkpoint (step {selected['step']}: highest forget_quality), "
        f"measured against the retain reference `{workspace / 'ref' / 'eval.json'}` "
        f"(model `{workspace / 'retain'}`):",
        f"| forget quality (KS p-value against the retain model) | "
        f"{selected['forget_quality']:.4g} |",
        f"| model utility | {selected['model_utility']:.4g} |",
        '"learning_rate": 0.01,',
    ):
        assert expected in text, expected


def _intercept(monkeypatch) -> dict:
    """Record the Hub calls instead of making them."""
    calls: dict = {}

    def create_repo(self, repo_id, **kwargs):
        calls["repo"] = (repo_id, kwargs)

    def create_commit(self, repo_id, operations, **kwargs):
        calls["files"] = {op.path_in_repo: op.path_or_fileobj for op in operations}
        calls["commit"] = (repo_id, kwargs["commit_message"])
        return type("Info", (), {"commit_url": f"https://hub/{repo_id}/commit/1"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    return calls


def test_push_to_hub_uploads_the_model_the_mask_and_the_card(workspace, monkeypatch, capsys):
    calls = _intercept(monkeypatch)
    assert main(_unlearn(workspace, "--push-to-hub", "someone/tiny-unlearned")) == 0
    out = workspace / "out"
    assert calls["repo"] == ("someone/tiny-unlearned", {"repo_type": "model", "exist_ok": True})
    assert set(calls["files"]) == {
        "README.md", "config.json", "generation_config.json", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json", "run_config.json", "training_log.json",
        "mask.safetensors",
    }  # fmt: skip
    assert calls["files"]["mask.safetensors"] == str(workspace / "mask.safetensors")
    uploaded_card = ModelCard.load(calls["files"]["README.md"])
    assert uploaded_card.content == (out / "README.md").read_text()
    assert "Not evaluated while unlearning" in uploaded_card.text
    assert calls["commit"] == (
        "someone/tiny-unlearned",
        f"Upload out (unlearned with wagle {__version__})",
    )
    assert "uploaded to https://hub/someone/tiny-unlearned/commit/1" in capsys.readouterr().out


def test_a_bad_repo_id_is_one_line_before_loading(workspace, monkeypatch, capsys):
    monkeypatch.setattr("wagle.models.load_pretrained", pytest.fail)
    assert main(_unlearn(workspace, "--push-to-hub", "not a/repo id")) == 2
    assert capsys.readouterr().err.strip() == (
        "wagle: error: --push-to-hub 'not a/repo id' is not a Hub repository id (owner/name)"
    )
