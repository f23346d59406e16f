"""How wrong answer likelihoods were with the answer tokenised on its own (SentencePiece).

Trains a small Llama on playground QA with a Llama-2-style SentencePiece tokenizer (the
whole ``prompt answer`` string tokenised at once, as wagle encodes now and as a real model saw
its text), then measures every forget answer's mean NLL (TOFU's probability is its exp(−·))
and summed NLL (NPO's quantity) under both encodings:

- ``whole``: ``prompt + " " + answer`` tokenised once, + EOS (wagle's encoding);
- ``separate``: the prompt, then `` answer`` tokenised alone (+ EOS), wagle's old encoding,
  which starts the answer with a lone ``▁`` piece the whole string never contains.

Writes benchmarks/results/boundary_nll.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/boundary_nll.py
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from wagle.data.playground import BenchmarkSpec, generate
from wagle.data.prompt import IGNORE_INDEX, encode_qa
from wagle.evaluation.likelihood import summed_nll
from wagle.playground.model import ModelSize
from wagle.playground.tokenizer import train_sentencepiece_tokenizer
from wagle.playground.train import train_model

RESULTS = Path(__file__).parent / "results" / "boundary_nll.json"
SIZE = ModelSize(
    hidden=64, layers=2, heads=2, intermediate=128, epochs=40, learning_rate=3e-3, batch_size=16
)


def separate_encoding(tokenizer, question: str, answer: str) -> dict[str, list[int]]:
    """The old encoding: prompt and `` answer`` tokenised separately."""
    prompt = tokenizer(f"Question: {question}\nAnswer:")["input_ids"]
    ids = tokenizer(" " + answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return {"input_ids": prompt + ids, "labels": [IGNORE_INDEX] * len(prompt) + ids}


def main() -> None:
    hf_logging.disable_progress_bar()
    splits = generate(BenchmarkSpec(n_authors=40, n_holdout=4, n_world_facts=20, seed=0))
    records = [r for name in ("forget10", "retain90", "world_facts") for r in splits[name]]
    texts = [r["question"] + " " + r["answer"] for r in records]
    tokenizer = train_sentencepiece_tokenizer(texts, vocab_size=1000, model_max_length=256)
    start = time.perf_counter()
    model, losses = train_model(records, tokenizer, SIZE, seed=0, progress=False)
    seconds = time.perf_counter() - start
    forget = splits["forget10"]
    pad = tokenizer.pad_token_id
    figures = {}
    for name, encode in (("whole", encode_qa), ("separate", separate_encoding)):
        examples = [encode(tokenizer, r["question"], r["answer"]) for r in forget]
        nll_sum, n_tokens = summed_nll(model, examples, pad, batch_size=32)
        figures[name] = {"sum": nll_sum, "mean": nll_sum / n_tokens, "tokens": n_tokens}
    whole, separate = figures["whole"], figures["separate"]
    mean_gap = (separate["mean"] - whole["mean"]).tolist()
    sum_gap = (separate["sum"] - whole["sum"]).tolist()
    result = {
        "setup": {
            "tokenizer": "Llama-2-style SentencePiece BPE, vocab 1000",
            "model": f"Llama hidden {SIZE.hidden}, {SIZE.layers} layers, trained "
            f"{SIZE.epochs} epochs on {len(records)} QA pairs (whole-string encoding)",
            "final_train_loss": round(losses[-1], 4),
            "train_seconds": round(seconds, 1),
            "n_forget": len(forget),
        },
        "mean_answer_nll": {
            "whole": round(float(whole["mean"].mean()), 4),
            "separate": round(float(separate["mean"].mean()), 4),
            "gap_mean": round(statistics.fmean(mean_gap), 4),
            "gap_median": round(statistics.median(mean_gap), 4),
            "gap_min": round(min(mean_gap), 4),
            "gap_max": round(max(mean_gap), 4),
        },
        "probability_exp_minus_mean_nll": {
            "whole": round(float(torch.exp(-whole["mean"]).mean()), 4),
            "separate": round(float(torch.exp(-separate["mean"]).mean()), 4),
        },
        "summed_answer_nll": {
            "whole": round(float(whole["sum"].mean()), 3),
            "separate": round(float(separate["sum"].mean()), 3),
            "gap_mean": round(statistics.fmean(sum_gap), 3),
        },
        "answer_tokens": {
            "whole": float(whole["tokens"].float().mean()),
            "separate": float(separate["tokens"].float().mean()),
        },
        "per_sample_mean_nll": {
            "whole": [round(v, 4) for v in whole["mean"].tolist()],
            "separate": [round(v, 4) for v in separate["mean"].tolist()],
        },
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_sample_mean_nll"}, indent=2))


if __name__ == "__main__":
    main()
