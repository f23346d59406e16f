"""The one way wagle loads a causal LM and its tokenizer.

Weights come through safetensors only (``use_safetensors=True``: a directory holding only a
pickled ``pytorch_model.bin`` is refused, never unpickled) and a model's own Python code runs
only when the caller passes ``trust_remote_code=True``. A path that cannot be loaded is a
user error in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from wagle.errors import WagleError
from wagle.validate import check_model_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DTYPES = ("float32", "bfloat16", "float16")


def torch_dtype(name: str) -> torch.dtype:
    """``"bfloat16"`` → ``torch.bfloat16``; a user error for other names."""
    import torch

    if name not in DTYPES:
        raise WagleError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return getattr(torch, name)


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The tokenizer saved with a model; its EOS doubles as the pad token if it has none."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise WagleError(f"cannot load a tokenizer from {path}: {_first_line(err)}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    path: str | Path,
    *,
    dtype: str = "float32",
    device: str | None = None,
    trust_remote_code: bool = False,
    fsdp: bool = False,
) -> PreTrainedModel:
    """A causal LM from safetensors weights, in ``dtype``, moved to ``device`` if given
    (``"auto"``: cuda when available, else cpu); ``fsdp``: sharded over all processes with
    FSDP2 as it loads, each on its own device (``wagle.sharding``)."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    check_model_dir(str(path))  # truncated or missing weight files: one line, not a traceback
    hf_logging.disable_progress_bar()
    sharding = {}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report: missing weights are our one-line error
    try:
        if fsdp:
            from transformers import AutoConfig

            from wagle.sharding import distributed_config

            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
            sharding = {"distributed_config": distributed_config(config)}
        model, info = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=torch_dtype(dtype),
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            **sharding,
            output_loading_info=True,
        )
    except (OSError, ValueError, SafetensorError) as err:
        raise WagleError(f"cannot load a causal LM from {path}: {_first_line(err)}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if missing := sorted(info.get("missing_keys") or []):
        raise WagleError(
            f"{path} lacks {len(missing)} of the model's weights (e.g. {missing[0]!r}): they "
            "would start random; are these the weights of another model, or an adapter?"
        )
    if device is not None and not fsdp:
        model = model.to(default_device() if device == "auto" else device)
    return model


def load_pretrained(
    path: str | Path,
    *,
    dtype: str = "float32",
    device: str | None = "auto",
    trust_remote_code: bool = False,
    fsdp: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``(load_model(...), load_tokenizer(...))`` of one directory (or cached hub id)."""
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    model = load_model(
        path, dtype=dtype, device=device, trust_remote_code=trust_remote_code, fsdp=fsdp
    )
    return model, tokenizer


def default_device() -> torch.device:
    """This process's device: its GPU under torchrun / accelerate launch, else cuda or cpu."""
    from accelerate import PartialState

    return PartialState().device


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
