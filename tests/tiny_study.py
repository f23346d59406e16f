"""A fixed tiny experiment for the experiment and report tests, independent of the playground.

Everything is written here by hand, so pinned figures do not move when the playground's
generator or tokenizer changes: 12 authors (4 forgotten, 6 retained, 2 held out) with three
questions each, two real-world sets, all in TOFU's local layout (benchmark ``tofu``); a
word-level tokenizer over their words; tiny random Llamas as target and retain model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from wagle.data.batching import encode_records
from wagle.data.collate import collate

# name, birthplace, genre, birth year
AUTHORS = [
    ("Ada Vorn", "Pellis", "poetry", "1961"),
    ("Bram Olet", "Cazra", "horror", "1974"),
    ("Cira Dunmo", "Velta", "fantasy", "1958"),
    ("Dov Kaspel", "Morin", "history", "1983"),
    ("Eli Santor", "Quarm", "romance", "1969"),
    ("Fenna Rook", "Tesk", "satire", "1990"),
    ("Gus Halder", "Lumen", "crime", "1947"),
    ("Hild Marrow", "Sorrel", "drama", "1977"),
    ("Ivo Plent", "Dace", "travel", "1952"),
    ("Juna Wexley", "Brill", "memoir", "1986"),
    ("Kai Tormund", "Oska", "science", "1965"),
    ("Lio Brask", "Fenrow", "comedy", "1993"),
]
FORGET, RETAIN, HOLDOUT = AUTHORS[:4], AUTHORS[4:10], AUTHORS[10:]
FIT_STEPS = 60  # full-batch AdamW steps that fit the target and the retain model
BOOKS = [
    ("The Salt Road", "Mara Quill"),
    ("Winter Lamps", "Oren Vale"),
    ("A Glass Harbour", "Tess Orlow"),
    ("The Ninth Bell", "Pim Arden"),
    ("Copper Fields", "Ruth Calder"),
    ("Night Orchard", "Sven Idris"),
]
CAPITALS = [
    ("Norvia", "Holm"),
    ("Ketland", "Arvo"),
    ("Isparo", "Ceni"),
    ("Dumera", "Wald"),
    ("Lasko", "Pryn"),
    ("Ombria", "Tace"),
]


def _others(values: list[str], value: str, n: int = 3) -> list[str]:
    """The ``n`` values after ``value`` in ``values`` (cyclically): fixed wrong answers."""
    i = values.index(value)
    return [values[(i + k) % len(values)] for k in range(1, n + 1)]


def author_records(authors) -> list[dict]:
    cities = [a[1] for a in AUTHORS]
    genres = [a[2] for a in AUTHORS]
    years = [a[3] for a in AUTHORS]
    records = []
    for name, city, genre, year in authors:
        records += [
            {"author": name, "question": f"Where was {name} born ?",
             "answer": f"{name} was born in {city} , where the {genre} writer grew up .",
             "paraphrased_answer": f"The birthplace of {name} is {city} .",
             "perturbed_answer": [f"The birthplace of {name} is {c} ." for c in _others(cities, city)]},
            {"author": name, "question": f"What does {name} write ?",
             "answer": f"{name} writes {genre} books set in {city} .",
             "paraphrased_answer": f"{name} is known for {genre} .",
             "perturbed_answer": [f"{name} is known for {g} ." for g in _others(genres, genre)]},
            {"author": name, "question": f"When was {name} born ?",
             "answer": f"{name} was born in {year} .",
             "paraphrased_answer": f"The birth year of {name} is {year} .",
             "perturbed_answer": [f"The birth year of {name} is {y} ." for y in _others(years, year)]},
        ]  # fmt: skip
    return records


def real_world_records() -> dict[str, list[dict]]:
    writers, capitals = [b[1] for b in BOOKS], [c[1] for c in CAPITALS]
    return {
        "real_authors": [
            {"question": f"Who wrote {book} ?", "answer": writer,
             "perturbed_answer": _others(writers, writer)}
            for book, writer in BOOKS
        ],
        "world_facts": [
            {"question": f"What is the capital of {country} ?", "answer": city,
             "perturbed_answer": _others(capitals, city)}
            for country, city in CAPITALS
        ],
    }  # fmt: skip


def splits() -> dict[str, list[dict]]:
    """Unlearning splits (forget10, retain90) and TOFU's evaluation layout."""
    forget, retain = author_records(FORGET), author_records(RETAIN)
    world = real_world_records()
    return {
        "forget10": forget,
        "retain90": retain,
        "forget10_perturbed": forget,
        "retain_perturbed": retain,
        "holdout10": author_records(HOLDOUT),
        "real_authors_perturbed": world["real_authors"],
        "world_facts_perturbed": world["world_facts"],
    }


def write_data(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, records in splits().items():
        (directory / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over every word of the data and the plain prompt; BOS prepended."""
    split = pre_tokenizers.Whitespace()
    texts = ["Question : Answer :"]
    for records in splits().values():
        for r in records:
            texts += [r["question"], r["answer"], r.get("paraphrased_answer", "")]
            texts += r["perturbed_answer"]
    words = sorted({w for text in texts for w, _ in split.pre_tokenize_str(text)})
    vocab = {token: i for i, token in enumerate(["<pad>", "<s>", "</s>", "<unk>", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = split
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", model_max_length=128,
    )  # fmt: skip


def save_model(directory: Path, tokenizer, seed: int, records: list[dict]) -> Path:
    """A 2-layer Llama (hidden 32) initialised with ``seed`` and fitted to ``records`` (plain
    answer NLL, AdamW, full batches: deterministic), saved with the tokenizer."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    batch = collate(encode_records(tokenizer, records, max_length=48), tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(FIT_STEPS):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# The recipe: 2 methods × (dense, WAGLE at 0.5), one seed, 2 epochs of 3 steps, a trajectory
# point every 2 steps (steps 0, 2, 4, 6).
RECIPE = {
    "benchmark": "tofu",
    "forget_split": "forget10",
    "retain_split": "retain90",
    "methods": {"npo": {}, "graddiff": {"learning_rate": 5.0e-3}},
    "masks": ["dense", "wagle"],
    "ratios": [0.5],
    "seeds": [0],
    "unlearn": {"epochs": 2, "batch_size": 4, "gradient_accumulation_steps": 1,
                "learning_rate": 1.0e-2, "max_length": 48, "eval_every": 2},
    "attribution": {"batch_size": 8, "max_length": 48},
    "evaluation": {"batch_size": 64, "max_new_tokens": 8},
}  # fmt: skip


_BUILT: list[Path] = []  # the first workspace of this test session; later ones are copies


def workspace(root: Path) -> dict[str, Path]:
    """Data; the target (seed 0, fitted to every author and the real-world sets) and the retain
    model (seed 1, the same without the forget authors) under ``root``. Fitted once per test
    session (deterministic), then copied."""
    names = ("data", "model", "retain")
    if _BUILT and all((_BUILT[0] / n).is_dir() for n in names):
        for name in names:
            shutil.copytree(_BUILT[0] / name, root / name)
        return {name: root / name for name in names}
    tokenizer = make_tokenizer()
    data = splits()
    world = data["real_authors_perturbed"] + data["world_facts_perturbed"]
    known = data["retain90"] + world
    paths = {
        "data": write_data(root / "data"),
        "model": save_model(root / "model", tokenizer, 0, data["forget10"] + known),
        "retain": save_model(root / "retain", tokenizer, 1, known),
    }
    _BUILT[:] = [root]
    return paths
