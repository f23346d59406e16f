"""Real tokenizers and templates: a chat model's end of turn, its EOS ids, and templates that read
the date. The fixture is a Llama-3-like tokenizer: a chat template that puts today's date in a
system turn and ends every turn with ``<|eot|>``, a special token that is not the tokenizer's EOS;
its model's ``generation_config`` lists both as EOS ids."""

from __future__ import annotations

import copy
import datetime

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.utils import chat_template_utils

from wagle.data.prompt import answer_end_id, encode_qa, format_prompt, prompt_token_ids
from wagle.evaluation.generation import generate_answers, stop_ids

LLAMA3_LIKE = (
    "{{ bos_token }}{% set today = strftime_now('%d %b %Y') %}"
    "<|start|>system\nToday: {{ today }} ({{ strftime_now('%Y-%m-%d') }})<|eot|>"
    "{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}<|eot|>{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant\n{% endif %}"
)


@pytest.fixture
def chat_tokenizer(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.add_tokens(["<|start|>", "<|eot|>"], special_tokens=True)
    tok.chat_template = LLAMA3_LIKE
    return tok


@pytest.fixture
def chat_model(chat_tokenizer):
    """A tiny Llama whose generation_config has two EOS ids: the EOS and ``<|eot|>``."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(chat_tokenizer), hidden_size=16, intermediate_size=32,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        max_position_embeddings=256, pad_token_id=chat_tokenizer.pad_token_id,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    eot = chat_tokenizer.convert_tokens_to_ids("<|eot|>")
    model.generation_config.eos_token_id = [chat_tokenizer.eos_token_id, eot]
    return model


def test_a_template_that_reads_the_date_always_renders_the_same_one(chat_tokenizer, monkeypatch):
    """``strftime_now`` formats 26 Jul 2024 in every format, whatever the clock says."""
    prompt = format_prompt(chat_tokenizer, "Who is Ada?")
    assert "Today: 26 Jul 2024 (2024-07-26)<|eot|>" in prompt

    class Tomorrow(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2031, 1, 2, 13, 45)

    monkeypatch.setattr(chat_template_utils, "datetime", Tomorrow)  # the clock templates see
    assert format_prompt(chat_tokenizer, "Who is Ada?") == prompt


def test_a_chat_answer_ends_with_the_end_of_turn_token(chat_tokenizer):
    """The labels end with ``<|eot|>`` (what the template renders after an assistant turn),
    not with the tokenizer's EOS; the prompt ends with the assistant header."""
    eot = chat_tokenizer.convert_tokens_to_ids("<|eot|>")
    assert answer_end_id(chat_tokenizer) == eot != chat_tokenizer.eos_token_id
    encoded = encode_qa(chat_tokenizer, "Who is Ada?", "A writer.")
    answer = [y for y in encoded["labels"] if y != -100]
    assert answer[-1] == eot
    assert chat_tokenizer.decode(answer[:-1]) == "A writer."
    assert chat_tokenizer.decode(prompt_token_ids(chat_tokenizer, "Who?")).endswith("assistant\n")


def test_generation_stops_at_every_eos_id_of_the_generation_config(chat_model, chat_tokenizer):
    """The model is rigged to emit ``<|eot|>`` at once: generation stops after one token
    (one forward pass) although ``<|eot|>`` is not the tokenizer's EOS."""
    eot = chat_tokenizer.convert_tokens_to_ids("<|eot|>")
    assert stop_ids(chat_model, chat_tokenizer) == [chat_tokenizer.eos_token_id, eot]
    bias = torch.zeros(len(chat_tokenizer))
    bias[eot] = 1e4
    chat_model.lm_head.register_forward_hook(lambda module, args, out: out + bias)
    passes = []
    chat_model.model.register_forward_hook(lambda *args: passes.append(1))
    answers = generate_answers(chat_model, chat_tokenizer, ["Who?"], max_new_tokens=5)
    assert answers == [""]
    assert len(passes) == 1
