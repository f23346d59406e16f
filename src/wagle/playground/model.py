"""Model sizes of the playground and their training recipes.

Each size is a Llama architecture with two recipes, as TOFU is built: ``pretrain`` trains the
**base** from scratch on the world, ``finetune`` trains the target (all fictitious authors) and
the retain models (without a forget split) from the base, with ``replay`` of the world corpus
mixed in (DESIGN.md §4: a small model fine-tuned on new authors alone forgets its world).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import LlamaConfig


@dataclass(frozen=True)
class Recipe:
    epochs: int
    learning_rate: float
    batch_size: int = 16
    warmup_steps: int = 100  # at most one epoch


@dataclass(frozen=True)
class ModelSize:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    pretrain: Recipe
    finetune: Recipe
    replay: float  # share of the world corpus mixed into the fine-tuning data


# "micro" is for tests (seconds); "small" is the default playground (DESIGN.md §4).
SIZES = {
    "micro": ModelSize(
        hidden=32,
        layers=2,
        heads=2,
        intermediate=64,
        pretrain=Recipe(epochs=2, learning_rate=3e-3),
        finetune=Recipe(epochs=2, learning_rate=1e-3),
        replay=0.5,
    ),
    "small": ModelSize(
        hidden=192,
        layers=4,
        heads=4,
        intermediate=512,
        pretrain=Recipe(epochs=20, learning_rate=3e-3),
        finetune=Recipe(epochs=8, learning_rate=2e-3),
        replay=1.0,
    ),
}


def llama_config(
    size: ModelSize, vocab_size: int, max_length: int, special: dict[str, int]
) -> LlamaConfig:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,
        max_position_embeddings=max_length,
        tie_word_embeddings=True,
        **special,
    )
