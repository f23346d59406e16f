"""A byte-level BPE tokenizer trained on the playground corpus, saved as a normal HF tokenizer."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, model_max_length: int
) -> PreTrainedTokenizerFast:
    """Train on ``texts``; BOS is prepended on encode (like Llama's), pad and EOS are set."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, backend.token_to_id(BOS))]
    )
    # model_max_length must be set explicitly: save_pretrained otherwise records a huge number.
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=model_max_length,
    )


def train_sentencepiece_tokenizer(
    texts: Iterable[str], vocab_size: int, model_max_length: int
) -> PreTrainedTokenizerFast:
    """A SentencePiece-style BPE laid out like Llama-2's ``tokenizer.json`` (normalizer: prepend
    ``▁`` and replace spaces by ``▁``; byte fallback), as a Llama tokenizer: BOS prepended, EOS
    ``</s>``, pad = EOS. For checking what depends on the tokenizer type (the prompt/answer
    boundary): `` Paris`` alone becomes ``▁ ▁Paris``, inside a sentence ``▁Paris``."""
    from transformers import LlamaTokenizerFast

    unk = "<unk>"
    backend = Tokenizer(models.BPE(unk_token=unk, byte_fallback=True))
    backend.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never", split=True)
    backend.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[unk, BOS, EOS], show_progress=False
    )
    backend.train_from_iterator(texts, trainer)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, backend.token_to_id(BOS))]
    )
    tokenizer = LlamaTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=unk,
        model_max_length=model_max_length,
    )
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
