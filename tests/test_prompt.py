"""The prompt/answer boundary and the prompt formats (wagle.data.prompt)."""

from __future__ import annotations

import pytest

from wagle.data.prompt import (
    IGNORE_INDEX,
    answer_separator,
    encode_answers,
    encode_qa,
    format_prompt,
    prompt_token_ids,
    with_prompt_format,
)
from wagle.errors import WagleError

ZEPHYR = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}"
    "{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
LLAMA2_CHAT = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + message['content'].strip() + ' [/INST]' }}"
    "{% else %}{{ ' ' + message['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)


def _qa_pairs(micro_splits):
    return [
        (r["question"], answer)
        for r in micro_splits["forget10"] + micro_splits["world_facts"]
        for answer in (r["answer"], *r["perturbed_answer"])
    ]


def _old_encoding(tokenizer, question, answer, max_length=512):
    """What wagle did before: prompt and `` answer`` tokenised separately, then EOS."""
    prompt = tokenizer(f"Question: {question}\nAnswer:")["input_ids"]
    ids = tokenizer(" " + answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = ids[: max(1, max_length - len(prompt))]
    return {"input_ids": prompt + ids, "labels": [IGNORE_INDEX] * len(prompt) + ids}


def test_sentencepiece_ids_are_the_whole_string_plus_eos(sp_tokenizer, micro_splits):
    for question, answer in _qa_pairs(micro_splits):
        encoded = encode_qa(sp_tokenizer, question, answer)
        prompt = f"Question: {question}\nAnswer:"
        whole = sp_tokenizer(f"{prompt} {answer}")["input_ids"] + [sp_tokenizer.eos_token_id]
        assert encoded["input_ids"] == whole
        n_prompt = len(sp_tokenizer(prompt)["input_ids"])
        assert encoded["labels"] == [IGNORE_INDEX] * n_prompt + whole[n_prompt:]


def test_sentencepiece_answer_tokenised_alone_gets_a_spurious_piece(sp_tokenizer, micro_splits):
    """The bug the boundary fixes: `` answer`` alone starts with a lone ``▁`` piece."""
    question, answer = _qa_pairs(micro_splits)[0]
    old = _old_encoding(sp_tokenizer, question, answer)
    new = encode_qa(sp_tokenizer, question, answer)
    assert old["input_ids"] != new["input_ids"]
    first_answer_token = old["input_ids"][old["labels"].count(IGNORE_INDEX)]
    assert sp_tokenizer.convert_ids_to_tokens(first_answer_token) == "▁"
    assert len(old["input_ids"]) == len(new["input_ids"]) + 1


def test_byte_level_bpe_encoding_is_unchanged(tokenizer, micro_splits):
    """The playground's tokenizer (byte-level BPE) gives the same ids as the old encoding, so
    the cached playground models need no rebuild."""
    for question, answer in _qa_pairs(micro_splits):
        assert encode_qa(tokenizer, question, answer) == _old_encoding(tokenizer, question, answer)
    question, answer = _qa_pairs(micro_splits)[0]
    cut = len(tokenizer(f"Question: {question}\nAnswer:")["input_ids"]) + 3  # 3 answer tokens
    assert encode_qa(tokenizer, question, answer, cut) == _old_encoding(
        tokenizer, question, answer, cut
    )


def test_truncation_keeps_the_prompt_and_cuts_the_answer(sp_tokenizer):
    full = encode_qa(sp_tokenizer, "Where was Ada born?", "Ada was born in London in 1815.")
    n_prompt = full["labels"].count(IGNORE_INDEX)
    cut = encode_qa(
        sp_tokenizer, "Where was Ada born?", "Ada was born in London in 1815.", n_prompt + 2
    )
    assert cut["input_ids"] == full["input_ids"][: n_prompt + 2]
    assert cut["labels"][n_prompt:] == full["labels"][n_prompt : n_prompt + 2]


def test_generation_prompt_is_the_unlabelled_prefix(sp_tokenizer, tokenizer):
    for tok in (sp_tokenizer, tokenizer):
        encoded = encode_qa(tok, "Where was Ada born?", "In London.")
        n_prompt = encoded["labels"].count(IGNORE_INDEX)
        assert prompt_token_ids(tok, "Where was Ada born?") == encoded["input_ids"][:n_prompt]


def test_tofu_llama2_format_has_no_space_before_the_answer(sp_tokenizer):
    tok = with_prompt_format(sp_tokenizer, "tofu-llama2")
    assert format_prompt(tok, "Who is Ada?") == "[INST] Who is Ada? [/INST]"
    assert answer_separator(tok) == ""
    encoded = encode_qa(tok, "Who is Ada?", "A writer.")
    whole = sp_tokenizer("[INST] Who is Ada? [/INST]A writer.")["input_ids"]
    assert encoded["input_ids"] == [*whole, sp_tokenizer.eos_token_id]
    assert sp_tokenizer.chat_template is None  # the tokenizer given is left as it was


@pytest.mark.parametrize(
    ("template", "prompt", "separator"),
    [
        (ZEPHYR, "<|user|>\nWho is Ada?</s>\n<|assistant|>\n", ""),
        (LLAMA2_CHAT, "<s>[INST] Who is Ada? [/INST]", " "),
    ],
)
def test_chat_template_gives_prompt_and_separator(sp_tokenizer, template, prompt, separator):
    sp_tokenizer.chat_template = template
    try:
        assert with_prompt_format(sp_tokenizer, "auto") is sp_tokenizer  # its own template
        assert format_prompt(sp_tokenizer, "Who is Ada?") == prompt
        assert answer_separator(sp_tokenizer) == separator
        encoded = encode_qa(sp_tokenizer, "Who is Ada?", "A writer.")
        # a template that renders <s> itself gets no second BOS
        whole = sp_tokenizer(
            prompt + separator + "A writer.", add_special_tokens="<s>" not in prompt
        )
        assert encoded["input_ids"] == whole["input_ids"] + [sp_tokenizer.eos_token_id]
        assert encoded["input_ids"].count(sp_tokenizer.bos_token_id) == 1
    finally:
        sp_tokenizer.chat_template = None


def test_plain_without_a_template_and_unknown_names(tokenizer):
    assert format_prompt(tokenizer, "Who?") == "Question: Who?\nAnswer:"
    assert answer_separator(tokenizer) == " "
    with pytest.raises(WagleError, match="needs a tokenizer with a chat template"):
        with_prompt_format(tokenizer, "chat")
    with pytest.raises(WagleError, match="tofu-llama2"):
        with_prompt_format(tokenizer, "alpaca")


@pytest.mark.parametrize("chat", [None, LLAMA2_CHAT])
def test_answers_to_one_question_encode_as_each_alone(sp_tokenizer, micro_splits, chat):
    """``encode_answers`` renders the prompt once and tokenises the answers in one call: the
    same ids and labels as ``encode_qa`` of each answer (with BOS rendered by the template or
    added by the tokenizer), also when the answers are cut to ``max_length``."""
    sp_tokenizer.chat_template = chat
    try:
        for record in micro_splits["forget10"][:5]:
            answers = [record["answer"], *record["perturbed_answer"]]
            for max_length in (512, 24):
                got = encode_answers(sp_tokenizer, record["question"], answers, max_length)
                alone = [
                    encode_qa(sp_tokenizer, record["question"], a, max_length) for a in answers
                ]
                assert got == alone
    finally:
        sp_tokenizer.chat_template = None
