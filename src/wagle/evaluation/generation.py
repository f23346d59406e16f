"""Batched greedy generation: answers to QA prompts and continuations of token prefixes.

The key/value cache of a batch is written into buffers sized for the whole generation
(``BufferedLayer``) instead of transformers' default, which concatenates every layer's cache
with the new token at each step (a copy of the whole cache per token). The model sees the same
keys and values either way, so the greedy tokens are the same.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

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
            **buffered_cache(model, batch["input_ids"].shape[1] + max_new_tokens),
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


class BufferedLayer(DynamicLayer):
    """One layer's key/value cache in buffers [B, heads, capacity, head_dim], filled in place;
    it hands attention views of the filled part, as ``DynamicLayer`` hands its whole tensors."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity, self.length = capacity, 0

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            shape = (*key_states.shape[:2], self.capacity, key_states.shape[3])
            self.key_buffer, self.value_buffer = (
                key_states.new_empty(shape),
                value_states.new_empty(shape),
            )
        start, end = self.length, self.length + key_states.shape[-2]
        if end > self.capacity:  # more than announced: grow as DynamicLayer does
            self.key_buffer = torch.cat([self.key_buffer[:, :, :start], key_states], dim=-2)
            self.value_buffer = torch.cat([self.value_buffer[:, :, :start], value_states], dim=-2)
            self.capacity = end
        else:
            self.key_buffer[:, :, start:end] = key_states
            self.value_buffer[:, :, start:end] = value_states
        self.length = end
        self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length


def buffered_cache(model: PreTrainedModel, capacity: int) -> dict[str, Cache]:
    """``generate``'s ``past_key_values``: a cache of ``BufferedLayer``s holding ``capacity``
    positions, where transformers would give the model plain ``DynamicLayer``s (full attention
    in every layer: no sliding window, linear attention or state-space layers); else nothing
    (transformers picks its own cache)."""
    supports = getattr(type(model), "_supports_default_dynamic_cache", None)
    if supports is None or not supports():
        return {}
    default = DynamicCache(config=model.config)
    if not default.layers or any(type(layer) is not DynamicLayer for layer in default.layers):
        return {}
    return {"past_key_values": Cache(layer_class_to_replicate=lambda: BufferedLayer(capacity))}
