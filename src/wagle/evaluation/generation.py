"""Batched greedy generation of answers to QA prompts."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wagle.data.collate import collate
from wagle.data.prompt import prompt_token_ids


@torch.no_grad()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: list[str],
    *,
    batch_size: int = 64,
    max_new_tokens: int = 64,
    progress: bool = True,
) -> list[str]:
    """Greedy answers, left-padded batches, stopping at EOS; the prompt is not included."""
    model.eval()
    answers: list[str] = []
    batches = range(0, len(questions), batch_size)
    for start in tqdm(batches, desc="generating", disable=not progress, leave=False):
        chunk = questions[start : start + batch_size]
        examples = [{"input_ids": prompt_token_ids(tokenizer, q)} for q in chunk]
        batch = collate(examples, tokenizer.pad_token_id, padding_side="left")
        batch = {k: v.to(model.device) for k, v in batch.items()}
        output = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        answers += [a.strip() for a in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers
