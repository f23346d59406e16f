"""Multiple-choice accuracy by the log-likelihood of each choice, on a model forced to answer."""

from __future__ import annotations

import pytest
import torch

from wagle.errors import WagleError
from wagle.evaluation.mcq import CHOICE_STYLES, mcq_accuracy

RECORDS = [
    {
        "question": "What is the capital of Orlinth?",
        "choices": ["Paris", "Duskmere", "Rome"],
        "answer": 1,
    },
    {
        "question": "Who wrote The Silent Orchard?",
        "choices": ["Tullin", "Fenmoor", "Halvard"],
        "answer": 0,
    },
]


def forced(model, tokenizer, text: str):
    """A model whose next token is always one of ``text``'s tokens: the lm_head is zeroed, so
    every logit is 0, and a hook adds +100 to the logits of those tokens."""
    model.lm_head.weight.data.zero_()
    bias = torch.zeros(model.config.vocab_size)
    bias[tokenizer(" " + text, add_special_tokens=False)["input_ids"]] = 100.0
    model.lm_head.register_forward_hook(lambda module, inputs, output: output + bias)
    return model


def test_letters_style_predicts_the_forced_letter(tokenizer, tiny_model):
    """Forced to say ' B' on every question: predictions [1, 1]; answers [1, 0] → accuracy 0.5."""
    model = forced(tiny_model(), tokenizer, "B")
    result, predictions = mcq_accuracy(model, tokenizer, RECORDS, style="letters")
    assert predictions == [1, 1]
    assert result.per_sample == [1.0, 0.0]
    assert result.aggregate == 0.5


def test_text_style_scores_the_choice_texts(tokenizer, tiny_model):
    """Forced towards the tokens of 'Duskmere': that choice (index 1) is the most likely text."""
    model = forced(tiny_model(), tokenizer, "Duskmere")
    _, predictions = mcq_accuracy(model, tokenizer, RECORDS[:1], style="text", batch_size=2)
    assert predictions == [1]


def test_ties_go_to_the_first_choice(tokenizer, tiny_model):
    """A zeroed lm_head makes every single-token letter equally likely: the prediction is A."""
    model = tiny_model()
    model.lm_head.weight.data.zero_()
    _, predictions = mcq_accuracy(model, tokenizer, RECORDS, style="letters")
    assert predictions == [0, 0]


def test_letters_style_lists_the_choices_in_the_prompt():
    question, continuations = CHOICE_STYLES["letters"](RECORDS[0])
    assert question == "What is the capital of Orlinth?\nA. Paris\nB. Duskmere\nC. Rome"
    assert continuations == ["A", "B", "C"]


def test_unknown_style_is_a_user_error(tokenizer, tiny_model):
    with pytest.raises(WagleError, match="letters"):
        mcq_accuracy(tiny_model(), tokenizer, RECORDS, style="cloze")
