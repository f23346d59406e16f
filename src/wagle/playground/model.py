"""Model sizes of the playground: small Llama-architecture models trained from scratch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import LlamaConfig


@dataclass(frozen=True)
class ModelSize:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    epochs: int
    learning_rate: float
    batch_size: int


# "micro" is for tests (seconds); "small" is the default playground (DESIGN.md §4).
SIZES = {
    "micro": ModelSize(
        hidden=32, layers=2, heads=2, intermediate=64, epochs=2, learning_rate=3e-3, batch_size=16
    ),
    "small": ModelSize(
        hidden=128,
        layers=4,
        heads=4,
        intermediate=256,
        epochs=15,
        learning_rate=5e-3,
        batch_size=16,
    ),
    "base": ModelSize(
        hidden=256,
        layers=6,
        heads=8,
        intermediate=512,
        epochs=16,
        learning_rate=3e-3,
        batch_size=16,
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
