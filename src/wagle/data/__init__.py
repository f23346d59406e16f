"""Data: loading TOFU-schema QA, text corpora and multiple choice; prompts; collation."""

from wagle.data.batching import encode_records, iter_batches
from wagle.data.collate import collate
from wagle.data.load import load_mcq, load_qa, load_text
from wagle.data.prompt import (
    PROMPT_FORMATS,
    encode_qa,
    encode_text,
    format_prompt,
    use_prompt_format,
)

__all__ = [
    "PROMPT_FORMATS",
    "collate",
    "encode_qa",
    "encode_records",
    "encode_text",
    "format_prompt",
    "iter_batches",
    "load_mcq",
    "load_qa",
    "load_text",
    "use_prompt_format",
]
