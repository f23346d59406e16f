"""Batched greedy generation: answers to QA prompts and continuations of token prefixes."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.data.collate import collate
from wagle.data.prompt import answer_end_id, prompt_token_ids


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: list[str],
    *,
    batch_size: int = 64,
    max_new_tokens: int = 64,
    progress: bool = True,
) -> list[str]:
    """Greedy answers, left-padded batches, stopping at the end of an answer (``stop_ids``);
    the prompt is not included."""
    prompts = [prompt_token_ids(tokenizer, q) for q in questions]
    return generate_continuations(
        model,
        tokenizer,
        prompts,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        progress=progress,
    )


@torch.no_grad()
def generate_continuations(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    *,
    batch_size: int = 64,
    max_new_tokens: int = 64,
    progress: bool = True,
) -> list[str]:
    """Greedy continuations of token-id prompts (left-padded batches, stopping at any of
    ``stop_ids``), stripped."""
    model.eval()
    stops = stop_ids(model, tokenizer)
    texts: list[str] = []
    batches = range(0, len(prompts), batch_size)
    for start in tqdm(batches, desc="generating", disable=not progress, leave=False):
        examples = [{"input_ids": ids} for ids in prompts[start : start + batch_size]]
        batch = collate(examples, tokenizer.pad_token_id, padding_side="left")
        batch = {k: v.to(model.device) for k, v in batch.items()}
        output = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stops,
        )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        texts += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return texts


def stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every id that ends a generation: the EOS ids of the model's ``generation_config``
    (Llama-3-Instruct lists ``<|end_of_text|>``, ``<|eom_id|>`` and ``<|eot_id|>``), the
    tokenizer's EOS and the end of an answer in the tokenizer's format (``answer_end_id``)."""
    config = getattr(model, "generation_config", None)
    listed = getattr(config, "eos_token_id", None)
    listed = [] if listed is None else [listed] if isinstance(listed, int) else list(listed)
    ids = [*listed, tokenizer.eos_token_id, answer_end_id(tokenizer)]
    return [int(i) for i in dict.fromkeys(ids) if i is not None]
