"""One prompt format per run: attribution, unlearning, evaluation and generation render the
same prompt string for a question (here TOFU's Llama-2 format, set by each stage's config)."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

import wagle.data.prompt as prompt_module
from wagle.attribution import AttributionConfig, attribute
from wagle.data.playground import write
from wagle.evaluation import EvalConfig, evaluate
from wagle.unlearning import UnlearnConfig, unlearn


@pytest.fixture
def rendered(monkeypatch):
    """Every (stage, question, prompt) that ``format_prompt`` renders while a stage runs."""
    seen: list[tuple[str, str, str]] = []
    stage = {"name": ""}
    original = prompt_module.format_prompt

    def spy(tokenizer, question):
        text = original(tokenizer, question)
        seen.append((stage["name"], question, text))
        return text

    monkeypatch.setattr(prompt_module, "format_prompt", spy)
    return seen, stage


def test_every_stage_renders_the_same_prompt(tmp_path, saved_inputs, micro_splits, rendered):
    seen, stage = rendered
    model = saved_inputs()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    write(micro_splits, tmp_path / "data")
    forget = micro_splits["forget10"][:4]

    stage["name"] = "attribution"
    config = AttributionConfig(prompt_format="tofu-llama2", batch_size=4, max_length=48)
    attribute(model, tokenizer, forget, micro_splits["retain90"][:4], config, progress=False)

    stage["name"] = "unlearning"
    unlearn(
        UnlearnConfig(
            model=str(tmp_path / "model"), forget=str(tmp_path / "forget.jsonl"),
            retain=str(tmp_path / "retain.jsonl"), out=str(tmp_path / "out"), max_steps=1,
            batch_size=4, gradient_accumulation_steps=1, max_length=48, progress=False,
            prompt_format="tofu-llama2",
        )
    )  # fmt: skip

    stage["name"] = "evaluation"
    unlearned = AutoTokenizer.from_pretrained(tmp_path / "out")
    eval_config = EvalConfig(data=str(tmp_path / "data"), max_new_tokens=2, batch_size=64)
    evaluate(model, unlearned, eval_config)  # "auto": the format saved with the unlearned model

    question = forget[0]["question"]
    by_stage = {name: {text for s, q, text in seen if s == name and q == question} for name in
                ("attribution", "unlearning", "evaluation")}  # fmt: skip
    assert by_stage == {name: {f"[INST] {question} [/INST]"} for name in by_stage}


def test_a_stage_never_leaves_its_format_on_the_tokenizer(
    tmp_path, tiny_model, tokenizer, micro_splits, rendered
):
    """Evaluation in TOFU's format, then attribution with ``auto``: attribution renders the
    tokenizer's own (plain) format, as it does when no evaluation ran before it (``wagle run``
    with a cached target evaluation), and the tokenizer's template is still None."""
    seen, stage = rendered
    model, forget = tiny_model(), micro_splits["forget10"][:2]
    write(micro_splits, tmp_path / "data")
    stage["name"] = "evaluation"
    config = EvalConfig(data=str(tmp_path / "data"), max_new_tokens=1, prompt_format="tofu-llama2")
    evaluate(model, tokenizer, config)
    assert tokenizer.chat_template is None
    stage["name"] = "attribution"
    attribute(model, tokenizer, forget, forget, AttributionConfig(batch_size=2), progress=False)
    question = forget[0]["question"]
    by_stage = {s: {text for s_, q, text in seen if s_ == s and q == question} for s in
                ("evaluation", "attribution")}  # fmt: skip
    assert by_stage == {
        "evaluation": {f"[INST] {question} [/INST]"},
        "attribution": {f"Question: {question}\nAnswer:"},
    }
