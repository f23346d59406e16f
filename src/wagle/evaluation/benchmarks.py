"""Benchmarks by name: where each one's data lives and which metrics run on it.

A benchmark's ``run`` returns *sections*: ``{name: {"n", "aggregates", "per_sample", ...}}``.

- ``playground``: the built playground's ``data`` dir (or ``--data``). Splits: the forget split,
  a fixed retain subset (``RETAIN_EVAL_SIZE`` records of ``retain90`` at evenly spaced indices
  ``i·n // 400``; retain90 is inside every retain split, like TOFU's ``retain_perturbed``),
  ``holdout`` (membership inference), ``real_authors``, ``world_facts``.
- ``tofu``: ``locuslab/TOFU`` or a local directory in its layout: ``forgetXX_perturbed``,
  ``retain_perturbed``, ``real_authors_perturbed``, ``world_facts_perturbed``, ``holdoutXX``.
- ``mcq``: one WMDP/MMLU-format file (``--data``); accuracy.
- ``muse``: a directory with ``forget.jsonl`` (text) and optionally ``retain.jsonl`` and
  ``holdout.jsonl`` (text), ``forget_qa.jsonl`` and ``retain_qa.jsonl`` (QA): perplexity,
  verbatim and knowledge memorisation, membership inference forget vs holdout. Or a MUSE hub
  id (``muse-bench/MUSE-News``, ``muse-bench/MUSE-Books``), read through ``wagle.data.hub``
  from the tables in ``MUSE_HUB_TABLES`` (MUSE's evaluation sets; verbatim memorisation
  continues MUSE's own prompts; knowledge memorisation asks without MUSE's in-context
  examples).
- ``text``: one raw-text file (``--data``); per-token NLL and perplexity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wagle.data.batching import encode_records
from wagle.data.load import Record, load_mcq, load_qa, load_text, read_records
from wagle.errors import WagleError
from wagle.evaluation import corpus
from wagle.evaluation.config import EvalConfig
from wagle.evaluation.mcq import CHOICE_STYLES, mcq_accuracy
from wagle.evaluation.memorisation import memorisation
from wagle.evaluation.mia import membership_inference, reference_model
from wagle.evaluation.qa import evaluate_qa, score_qa
from wagle.evaluation.token_stats import token_statistics
from wagle.registry import lookup
from wagle.validate import looks_like_hub_id

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Sections = dict[str, dict[str, Any]]
FORGET_SPLITS = ("forget01", "forget05", "forget10")
RETAIN_EVAL_SIZE = 400


@dataclass(frozen=True)
class Benchmark:
    """``run`` computes the sections; ``check`` reads and validates the data before any model
    is loaded and returns the forget questions (None where there is no forget QA set)."""

    run: Callable[[PreTrainedModel, PreTrainedTokenizerBase, EvalConfig], Sections]
    check: Callable[[EvalConfig], list[str] | None]
    default_split: str = ""
    qa_sets: Callable[[str, str], dict[str, tuple[str, str, list[Record]]]] | None = None


def resolve(config: EvalConfig) -> tuple[Benchmark, EvalConfig]:
    """The benchmark of ``config`` and the config with its default split filled in; a user
    error for an unknown benchmark or multiple-choice style."""
    benchmark = lookup(BENCHMARKS, config.benchmark, "benchmark")
    lookup(CHOICE_STYLES, config.mcq_style, "multiple-choice style")
    return benchmark, dataclasses.replace(config, split=config.split or benchmark.default_split)


@dataclass(frozen=True)
class QALayout:
    """Names of the QA sources of one forget split: section name → split name."""

    forget: str
    retain: str
    holdout: str
    real_world: dict[str, str]
    retain_limit: int | None = None


BENCHMARKS: dict[str, Benchmark] = {}


def _playground_layout(split: str) -> QALayout:
    real_world = {"real_authors": "real_authors", "world_facts": "world_facts"}
    return QALayout(split, "retain90", "holdout", real_world, RETAIN_EVAL_SIZE)


def _tofu_layout(split: str) -> QALayout:
    real_world = {name: f"{name}_perturbed" for name in ("real_authors", "world_facts")}
    return QALayout(f"{split}_perturbed", "retain_perturbed", f"holdout{split[-2:]}", real_world)


def _playground_data() -> str:
    from wagle.playground import PlaygroundConfig, load_info

    return load_info(PlaygroundConfig())["data"]


def _check_split(split: str) -> None:
    if split not in FORGET_SPLITS:
        raise WagleError(f"unknown forget split {split!r}; choose one of {FORGET_SPLITS}")


def qa_benchmark(
    layout_of: Callable[[str], QALayout], default_source: Callable[[], str]
) -> Benchmark:
    """A TOFU-style benchmark: QA metrics on forget, retain and real-world sets, MIA vs holdout."""

    def sets(split: str, data: str) -> dict[str, tuple[str, str, list[Record]]]:
        """``{section: (role, source split, records)}`` of the QA sets of a forget split."""
        _check_split(split)
        source, layout = data or default_source(), layout_of(split)
        roles = {"forget": ("forget", layout.forget), "retain": ("retain", layout.retain)}
        roles |= {name: ("real_world", s) for name, s in layout.real_world.items()}
        loaded = {
            name: (role, s, load_qa(source, s, for_eval=role != "real_world"))
            for name, (role, s) in roles.items()
        }
        role, s, retain = loaded["retain"]
        loaded["retain"] = (role, s, evenly_spaced(retain, layout.retain_limit or len(retain)))
        return loaded

    def check(config: EvalConfig) -> list[str]:
        _check_split(config.split)  # before looking for data: a typo is the message
        if config.data and Path(config.data).is_file():  # every section would read that file
            raise WagleError(
                f"the {config.benchmark} benchmark reads a directory of split files "
                f"(forget, retain, holdout, real world); {config.data} is one file"
            )
        load_qa(config.data or default_source(), layout_of(config.split).holdout)
        return [r["question"] for r in sets(config.split, config.data)["forget"][2]]

    def run(model, tokenizer, config: EvalConfig) -> Sections:
        loaded = sets(config.split, config.data)
        source, layout = config.data or default_source(), layout_of(config.split)
        roles = {name: (role, split) for name, (role, split, _) in loaded.items()}
        data = {name: records for name, (_, _, records) in loaded.items()}
        sections: Sections = {}
        for name, (role, split) in roles.items():
            scores = score_qa(
                model,
                tokenizer,
                data[name],
                role,
                batch_size=config.batch_size,
                max_new_tokens=config.max_new_tokens,
            )
            questions = [r["question"] for r in data[name]]
            sections[name] = {"source": split} | evaluate_qa(scores, questions)
        holdout = load_qa(source, layout.holdout)
        # one pass over the forget answers for both sections
        examples = encode_records(tokenizer, data["forget"])
        stats = token_statistics(model, examples, tokenizer.pad_token_id, config.batch_size)
        sections["mia"] = _mia(
            model, tokenizer, data["forget"], holdout, layout.holdout, config, stats
        )
        sections["memorisation"] = memorisation(
            model, tokenizer, data["forget"], batch_size=config.batch_size, stats=stats
        )
        return sections

    return Benchmark(run, check, "forget10", qa_sets=sets)


def qa_sets(benchmark: str, split: str, data: str = "") -> dict[str, tuple[str, str, list[Record]]]:
    """The QA sets ``wagle evaluate`` scores for a TOFU-style benchmark and forget split:
    ``{section: (role, source split, records)}`` (forget, retain, real_authors, world_facts)."""
    sets = lookup(BENCHMARKS, benchmark, "benchmark").qa_sets
    if sets is None:
        raise WagleError(f"benchmark {benchmark!r} has no QA sets (playground and tofu have)")
    return sets(split, data)


def evenly_spaced(records: list[Record], count: int) -> list[Record]:
    """``count`` records at indices ``i·n // count`` (all of them when there are fewer)."""
    n = len(records)
    return records if n <= count else [records[i * n // count] for i in range(count)]


def _mia(
    model, tokenizer, members, nonmembers, nonmember_source: str, config, member_tokens=None
) -> dict[str, Any]:
    result = membership_inference(
        model, tokenizer, members, nonmembers, k=config.mink_k, batch_size=config.batch_size,
        attacks=config.mia_attacks, reference_model=reference_model(config, model.device),
        p=config.gradnorm_p, member_tokens=member_tokens,
    )  # fmt: skip
    attacks = {name: v for name, v in result.items() if name != "k"}
    return {
        "n": len(members),
        "nonmembers": nonmember_source,
        "k": result["k"],
        "aggregates": {f"{name}_auc": v["auc"] for name, v in attacks.items()},
        "per_sample": {
            name: {"members": v["members"], "nonmembers": v["nonmembers"]}
            for name, v in attacks.items()
        },
    }


def _mcq(model, tokenizer, config: EvalConfig) -> Sections:
    records = load_mcq(_required_data(config), config.split or None)
    result, predictions = mcq_accuracy(
        model, tokenizer, records, style=config.mcq_style, batch_size=config.batch_size
    )
    per_sample = {"prediction": predictions, "correct": result.per_sample}
    aggregates = {"accuracy": result.aggregate}
    return {"mcq": {"n": len(records), "aggregates": aggregates, "per_sample": per_sample}}


def _text(model, tokenizer, config: EvalConfig) -> Sections:
    texts = load_text(_required_data(config), config.split or None)
    return {"text": corpus.perplexity(model, tokenizer, texts, batch_size=config.batch_size)}


def _muse(model, tokenizer, config: EvalConfig) -> Sections:
    splits, data = _muse_data(config.data)
    forget, kwargs = data["forget"], {"batch_size": config.batch_size}
    if "verbmem" in data:  # MUSE's prompts and true continuations
        verbmem = corpus.verbatim_memorisation_of_pairs(
            model,
            tokenizer,
            data["verbmem"],
            continuation_tokens=config.continuation_tokens,
            **kwargs,
        )
    else:
        verbmem = corpus.verbatim_memorisation(
            model,
            tokenizer,
            forget,
            prefix_tokens=config.prefix_tokens,
            continuation_tokens=config.continuation_tokens,
            **kwargs,
        )
    sections: Sections = {
        "perplexity_forget": corpus.perplexity(model, tokenizer, forget, **kwargs),
        "verbmem": verbmem,
        "memorisation": memorisation(model, tokenizer, forget, **kwargs),
    }
    if "retain" in data:
        sections["perplexity_retain"] = corpus.perplexity(
            model, tokenizer, data["retain"], **kwargs
        )
    for name in ("forget", "retain"):
        if f"{name}_qa" in data:
            sections[f"knowmem_{name}"] = corpus.knowledge_memorisation(
                model, tokenizer, data[f"{name}_qa"], max_new_tokens=config.max_new_tokens, **kwargs
            )
    if "holdout" in data:
        holdout = data["holdout"]
        sections["mia"] = _mia(model, tokenizer, forget, holdout, splits["holdout"], config)
    return sections


def _required_data(config: EvalConfig) -> str:
    if not config.data:
        raise WagleError(f"the {config.benchmark} benchmark needs --data (a file or directory)")
    return config.data


def _check_mcq(config: EvalConfig) -> None:
    load_mcq(_required_data(config), config.split or None)


def _check_text(config: EvalConfig) -> None:
    load_text(_required_data(config), config.split or None)


# The MUSE hub tables (CONFIG:SPLIT) a hub id is evaluated on, by the role of the local file.
MUSE_HUB_TABLES = {
    "forget": "privleak:forget",  # texts: perplexity, membership (members)
    "retain": "privleak:retain",  # texts: perplexity
    "holdout": "privleak:holdout",  # texts: membership (non-members)
    "forget_qa": "knowmem:forget_qa",
    "retain_qa": "knowmem:retain_qa",
    "verbmem": "verbmem:forget",  # prompt, gt
}


def _muse_data(source: str) -> tuple[dict[str, str], dict[str, list]]:
    """The split and the records of each MUSE role (``forget`` always; ``retain``, ``holdout``,
    ``forget_qa``, ``retain_qa`` if a directory holds them; ``verbmem`` pairs from a hub id),
    read and checked."""
    if not source:
        raise WagleError("the muse benchmark needs --data: a directory or a MUSE hub id")
    root = Path(source)
    if root.is_dir():
        if not (root / "forget.jsonl").is_file():
            raise WagleError(f"a MUSE-style benchmark needs {root}/forget.jsonl (raw text)")
        local = ("forget", "retain", "holdout", "forget_qa", "retain_qa")
        splits = {r: r for r in local if (root / f"{r}.jsonl").is_file()}
    elif looks_like_hub_id(source):
        splits = MUSE_HUB_TABLES
    else:
        raise WagleError(f"MUSE data not found: {source} (a directory or a MUSE hub id)")
    data: dict[str, list] = {}
    for role, split in splits.items():
        if role.endswith("_qa"):
            data[role] = load_qa(source, split)
        elif role == "verbmem":
            data[role] = _load_pairs(source, split)
        else:
            data[role] = load_text(source, split)
    return splits, data


def _load_pairs(source: str, split: str) -> list[Record]:
    """MUSE verbmem records: a ``prompt`` and its true continuation ``gt`` (strings)."""
    records = read_records(source, split)
    for i, r in enumerate(records):
        if not (isinstance(r.get("prompt"), str) and isinstance(r.get("gt"), str)):
            raise WagleError(f"{source} ({split}): record {i} needs 'prompt' and 'gt' strings")
    return records


def _check_muse(config: EvalConfig) -> None:
    _muse_data(config.data)


BENCHMARKS["playground"] = qa_benchmark(_playground_layout, _playground_data)
BENCHMARKS["tofu"] = qa_benchmark(_tofu_layout, lambda: "locuslab/TOFU")
BENCHMARKS["mcq"] = Benchmark(_mcq, _check_mcq)
BENCHMARKS["muse"] = Benchmark(_muse, _check_muse)
BENCHMARKS["text"] = Benchmark(_text, _check_text)

# lm-eval-harness registers itself (wagle.evaluation.harness; lm_eval is imported when it runs)
import wagle.evaluation.harness  # noqa: E402, F401
