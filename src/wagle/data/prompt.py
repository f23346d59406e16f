"""The QA prompt and the prompt/answer boundary, shared by every stage.

**Format.** The prompt is whatever the tokenizer's chat template renders for one user turn (with
the generation prompt); a tokenizer without one uses the ``plain`` format. A run picks a format
with ``prompt_format`` (one config field in attribution, unlearning and evaluation). Each stage
passes its own format on: :func:`with_prompt_format` returns a *copy* of the tokenizer with the
format as its chat template and never changes the tokenizer it is given, so what a stage encodes
does not depend on which stage ran before it in the same process. The copy is what an unlearned
model is saved with, which carries the format to evaluation (``auto``). Named formats:

- ``plain``: ``Question: {question}\\nAnswer:`` and `` {answer}`` (the playground's format);
- ``tofu-llama2``: ``[INST] {question} [/INST]{answer}``, TOFU's Llama-2 format (its
  ``question_start_tag "[INST] "``, ``question_end_tag " [/INST]"``, ``answer_tag ""``: no
  space before the answer, as ``locuslab/tofu_ft_llama2-7b`` was fine-tuned);
- ``chat``: the model's own chat template (an error if it has none); ``auto``: ``chat`` when the
  tokenizer has a template, else ``plain``.

What separates prompt and answer is what the template renders between the generation prompt and
an assistant message's content (e.g. `` `` for Llama-2 chat, nothing for Zephyr's
``<|assistant|>\\n``). What ends an answer is the first special token the template renders after
that content: the end of turn of a chat model (Llama-3's ``<|eot_id|>``, Qwen's ``<|im_end|>``,
Llama-2's ``</s>``), else the tokenizer's EOS (``answer_end_id``). Templates that read the date
(``strftime_now``, as Llama-3.1's system turn does) see ``PROMPT_DATE``, so a prompt never changes
from one day to the next (determinism, resumed runs, comparisons with a reference evaluation).

**Boundary.** The whole string ``prompt + separator + answer`` is tokenised once, and the answer
tokens (the only labelled ones) are those past the longest common prefix with the prompt's own
ids, then EOS. Tokenising the answer on its own would be wrong with SentencePiece tokenizers
(Llama-2, Mistral): they prepend ``▁`` to every string, so `` Paris`` alone becomes
``▁ ▁Paris`` where the whole string has ``▁Paris``. For a byte-level BPE (the playground's) both
give the same ids.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wagle.errors import WagleError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # the label value that torch's cross-entropy skips
_SENTINEL = "WagleAnswerSentinel"  # stands for the answer when locating the separator
PROMPT_DATE = datetime.date(2024, 7, 26)  # what Llama-3.1's template shows without a clock
# strftime directives a template may ask of the date, and their values on PROMPT_DATE
_DATE_DIRECTIVES = ("%d", "%e", "%j", "%m", "%y", "%Y", "%b", "%B", "%a", "%A", "%H", "%I", "%M")
_DATE_DIRECTIVES += ("%S", "%p", "%U", "%W", "%w", "%u")


@dataclass(frozen=True)
class PromptFormat:
    """A named format as a chat template: a user turn renders the prompt, an assistant turn
    ``separator + content``."""

    prompt: str  # a Jinja expression around ``question``
    separator: str
    description: str

    def chat_template(self) -> str:
        return (
            "{% for message in messages %}{% if message['role'] == 'user' %}"
            "{% set question = message['content'] %}" + self.prompt + "{% else %}"
            f"{self.separator}" + "{{ message['content'] }}{% endif %}{% endfor %}"
        )


PROMPT_FORMATS: dict[str, PromptFormat] = {
    "plain": PromptFormat(
        "Question: {{ question }}\nAnswer:", " ", "Question: {question}\\nAnswer: {answer}"
    ),
    "tofu-llama2": PromptFormat(
        "[INST] {{ question }} [/INST]",
        "",
        "TOFU's Llama-2 format: [INST] {question} [/INST]{answer}",
    ),
}
FORMAT_CHOICES = ("auto", "chat", *PROMPT_FORMATS)
PROMPT_FORMAT_HELP = (
    "QA prompt format: auto (the model's chat template if it has one, else plain), chat, "
    + ", ".join(f"{name} ({f.description})" for name, f in PROMPT_FORMATS.items())
)


def check_prompt_format(name: str) -> None:
    if name not in FORMAT_CHOICES:
        raise WagleError(
            f"unknown prompt format {name!r}; choose one of {', '.join(FORMAT_CHOICES)}"
        )


def with_prompt_format(
    tokenizer: PreTrainedTokenizerBase, name: str = "auto"
) -> PreTrainedTokenizerBase:
    """``tokenizer`` bound to format ``name``: for a named format a copy whose chat template
    is the format's; for ``auto``/``chat`` the tokenizer itself (its own template). The
    tokenizer given is never changed."""
    check_prompt_format(name)
    if name == "chat" and not tokenizer.chat_template:
        raise WagleError("prompt format 'chat' needs a tokenizer with a chat template; it has none")
    if name not in PROMPT_FORMATS:
        return tokenizer
    bound = copy.copy(tokenizer)  # shares the vocabulary; only the template differs
    bound.chat_template = PROMPT_FORMATS[name].chat_template()
    return bound


def format_prompt(tokenizer: PreTrainedTokenizerBase, question: str) -> str:
    """The prompt string of ``question`` in the tokenizer's format (see the module docstring)."""
    return _render(tokenizer, [{"role": "user", "content": question}], generation_prompt=True)


def answer_separator(
    tokenizer: PreTrainedTokenizerBase, question: str = "q", prompt: str | None = None
) -> str:
    """What the format puts between the prompt and the answer's text (``prompt``: the
    question's rendered prompt, if the caller has it already)."""
    return _answer_frame(tokenizer, question, prompt)[0]


def answer_end_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token that ends an answer in the tokenizer's format (see the module docstring)."""
    return _answer_frame(tokenizer, "q")[1]


def _answer_frame(
    tokenizer: PreTrainedTokenizerBase, question: str, prompt: str | None = None
) -> tuple[str, int]:
    """(separator, end-of-answer id) from one rendering of a question and an answer."""
    prompt = format_prompt(tokenizer, question) if prompt is None else prompt
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": _SENTINEL}]
    full = _render(tokenizer, turns, generation_prompt=False)
    if _SENTINEL not in full:
        return (" " if prompt[-1:].strip() else ""), tokenizer.eos_token_id
    head, tail = full.split(_SENTINEL, 1)
    if head.startswith(prompt):
        separator = head[len(prompt) :]
    else:  # a template that rewrites earlier turns
        separator = " " if prompt[-1:].strip() else ""
    special = set(tokenizer.all_special_ids)
    special |= {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    ends = [i for i in tokenizer(tail, add_special_tokens=False)["input_ids"] if i in special]
    return separator, ends[0] if ends else tokenizer.eos_token_id


def encode_qa(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    answer: str,
    max_length: int = 512,
    *,
    eos: bool = True,
) -> dict[str, list[int]]:
    """Ids of the whole ``prompt + separator + answer`` (+ EOS); labels -100 on the prompt.

    The answer is truncated (never the prompt) when the sample exceeds ``max_length``; a prompt
    of ``max_length`` tokens or more leaves no answer token (``encode_records`` refuses that).
    ``eos=False`` scores the answer as a continuation (multiple-choice options).
    """
    return encode_answers(tokenizer, question, [answer], max_length, eos=eos)[0]


def encode_answers(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    answers: list[str],
    max_length: int = 512,
    *,
    eos: bool = True,
) -> list[dict[str, list[int]]]:
    """``encode_qa`` of each answer to one question: the prompt is rendered and tokenised once,
    and the whole strings are tokenised in one call (a fast tokenizer batches them)."""
    prompt = format_prompt(tokenizer, question)
    separator, end_id = _answer_frame(tokenizer, question, prompt)
    prompt_ids = _tokenize(tokenizer, prompt)
    encoded = []
    for ids in _tokenize_all(tokenizer, [prompt + separator + answer for answer in answers]):
        n_prompt = common_prefix_length(ids, prompt_ids)
        answer_ids = ids[n_prompt:] + [end_id] * eos
        answer_ids = answer_ids[: max(0, max_length - n_prompt)]  # none: prompt too long
        encoded.append(
            {
                "input_ids": ids[:n_prompt] + answer_ids,
                "labels": [IGNORE_INDEX] * n_prompt + answer_ids,
            }
        )
    return encoded


def encode_text(
    tokenizer: PreTrainedTokenizerBase, text: str, max_length: int = 512
) -> dict[str, list[int]]:
    """Token ids of a raw text; every token is labelled."""
    ids = tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_length)
    return {"input_ids": ids["input_ids"], "labels": list(ids["input_ids"])}


def prompt_token_ids(tokenizer: PreTrainedTokenizerBase, question: str) -> list[int]:
    """The prompt's ids (what generation continues), with BOS if the tokenizer uses one."""
    return _tokenize(tokenizer, format_prompt(tokenizer, question))


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _render(tokenizer: PreTrainedTokenizerBase, turns: list[dict], generation_prompt: bool) -> str:
    template = tokenizer.get_chat_template() if tokenizer.chat_template else None
    template = template or PROMPT_FORMATS["plain"].chat_template()
    return tokenizer.apply_chat_template(
        turns,
        chat_template=_FIXED_DATE + template,
        tokenize=False,
        add_generation_prompt=generation_prompt,
    )


def _fixed_date_macro() -> str:
    """A Jinja macro ``strftime_now(format)`` that formats ``PROMPT_DATE`` (midnight): defined
    ahead of a template, it shadows the clock that transformers gives templates."""
    values = "".join(f" | replace({d!r}, {PROMPT_DATE.strftime(d)!r})" for d in _DATE_DIRECTIVES)
    return "{% macro strftime_now(format) %}{{ format" + values + " }}{% endmacro %}"


_FIXED_DATE = _fixed_date_macro()


def _tokenize(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Ids of ``text``; BOS is added unless the text already starts with it (chat templates
    such as Llama-2's render ``<s>`` themselves)."""
    return _tokenize_all(tokenizer, [text])[0]


def _tokenize_all(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """``_tokenize`` of each text, one tokenizer call per BOS choice."""
    bos = tokenizer.bos_token
    rendered_bos = [bool(bos) and text.startswith(bos) for text in texts]
    ids: list[list[int]] = [[] for _ in texts]
    for has_bos in set(rendered_bos):
        rows = [i for i, b in enumerate(rendered_bos) if b == has_bos]
        batch = tokenizer([texts[i] for i in rows], add_special_tokens=not has_bos)["input_ids"]
        for i, row in zip(rows, batch, strict=True):
            ids[i] = row
    return ids
