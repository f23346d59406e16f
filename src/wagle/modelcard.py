"""The model card (``README.md``) of every unlearned model directory, written with
huggingface_hub's ``ModelCard``.

It records what a reader needs to trust and reproduce the model: the base model, the method and
its options, the mask (score method, ratio ρ, γ, the file's fingerprint), the recipe (the
resolved run options), the evaluation summary with the retain reference it was measured
against, the **unselected-entries checksum** and the wagle version.

The checksum is a SHA-256 over the raw bytes of every weight entry outside the mask (parameters
in name order; a parameter the mask does not name counts whole). Masked unlearning leaves those
entries bit-for-bit unchanged, so the digest of the unlearned model equals the base model's:
``unselected_digest(load_model(BASE), load_mask(MASK))`` re-checks it (``wagle.models``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wagle import __version__
from wagle.validate import looks_like_hub_id

if TYPE_CHECKING:
    import torch

CARD_FILE = "README.md"
# The trajectory figures a card shows, in this order, with their labels.
POINT_FIGURES = {
    "forget_quality": "forget quality (KS p-value against the retain model)",
    "model_utility": "model utility",
    "forget_rouge": "forget ROUGE-L recall",
    "forget_prob": "forget probability",
    "retain_rouge": "retain ROUGE-L recall",
    "repetition": "repetition of forget answers",
    "degenerate": "degenerate",
}


def unselected_digest(model: torch.nn.Module, mask: dict[str, torch.Tensor] | None) -> str | None:
    """``sha256:<hex>`` of the bytes of every entry outside ``mask``; None for dense (no mask)."""
    import torch

    if mask is None:
        return None
    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        flat = param.detach().reshape(-1)
        if name in mask:
            flat = flat[~mask[name].reshape(-1).to(flat.device)]
        digest.update(name.encode())
        digest.update(flat.view(ints[flat.element_size()]).cpu().numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def write_run_card(directory: str | Path, record: dict[str, Any], model) -> Path:
    """The card of a ``wagle unlearn`` output: ``record`` is its ``run_config.json`` (with the
    selected point), ``model`` the unlearned model in memory."""
    from wagle.attribution.masks import load_mask

    mask = load_mask(record["mask"]["path"], model) if record.get("mask") else None
    reference = None
    if path := record["run"].get("eval_reference"):
        path = Path(path) / "eval.json" if Path(path).is_dir() else Path(path)
        reference = {"path": str(path), "model": json.loads(path.read_text()).get("model")}
    evaluation = point_evaluation(record.get("selected"), record.get("criterion", {}), reference)
    return write_model_card(directory, record, evaluation, unselected_digest(model, mask))


def write_cell_card(directory, config, options, mask, mask_info, model, evaluation) -> Path:
    """The card of a ``wagle run`` cell's saved model: its config and method options, its
    in-memory mask (None: dense) with the metadata the cell records, its full evaluation."""
    import dataclasses

    from wagle import config as cfg

    run = {
        "wagle_version": __version__,
        "run": cfg.to_dict(config),
        "method_options": dataclasses.asdict(options),
        "mask": None if mask is None else {"metadata": mask_info["mask"]},
    }
    return write_model_card(
        directory, run, eval_evaluation(evaluation), unselected_digest(model, mask)
    )


def point_evaluation(
    point: dict[str, Any] | None, criterion: dict[str, Any], reference: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The evaluation a card shows from the selected trajectory point (None if not evaluated)."""
    figures = {k: point[k] for k in POINT_FIGURES if k in (point or {})}
    if not figures:  # not evaluated while unlearning
        return None
    source = f"the selected checkpoint (step {point['step']}: {criterion.get('rule', '')})"
    return {"source": source, "figures": figures, "reference": _reference(reference)}


def eval_evaluation(record: dict[str, Any]) -> dict[str, Any]:
    """The evaluation a card shows from a ``wagle evaluate`` record (``eval.json``)."""
    keys = ("forget_quality", "model_utility", "privleak", "forget_efficacy", "utility")
    figures = {k: record["summary"].get(k) for k in keys}
    figures |= record["summary"]["figures"]
    source = f"wagle evaluate ({record['benchmark']} / {record['split']})"
    return {"source": source, "figures": figures, "reference": record.get("reference")}


def _reference(reference: dict[str, Any] | None) -> dict[str, Any] | None:
    if reference is None:
        return None
    return {"path": reference.get("path"), "model": reference.get("model")}


def model_card(run: dict[str, Any], evaluation: dict[str, Any] | None, digest: str | None):
    """The ``ModelCard`` of a run record (``run_config.json``: ``run``, ``method_options``,
    ``mask``), its evaluation summary and its unselected-entries digest."""
    from huggingface_hub import ModelCard, ModelCardData

    config, mask = run["run"], run.get("mask")
    base = config["model"]
    data = ModelCardData(
        base_model=base if looks_like_hub_id(base) and not Path(base).exists() else None,
        library_name="transformers",
        tags=["wagle", "unlearning", f"unlearning-{config['method']}"],
    )
    lines = [
        "---", data.to_yaml(), "---", "",
        f"# {Path(config['out']).name or 'unlearned model'}", "",
        f"`{base}` after unlearning with **{config['method']}** "
        + (_mask_sentence(mask["metadata"]) if mask else "(dense: every weight could change)")
        + f", made with wagle {run.get('wagle_version', __version__)}.", "",
        *([CHECKSUM_NOTE, ""] if digest else []),
        "## Unlearning", "",
        "| | |", "|---|---|",
        f"| base model | `{base}` |",
        f"| method | {config['method']} |",
        f"| method options | {_inline(run.get('method_options', {}))} |",
        f"| forget data | `{config['forget']}` {config.get('forget_split') or ''} |",
        f"| retain data | `{config['retain']}` {config.get('retain_split') or ''} |",
        f"| mask | {_mask_cell(mask)} |",
        f"| unselected-entries checksum | {f'`{digest}`' if digest else 'none (dense)'} |",
        f"| wagle version | {run.get('wagle_version', __version__)} |", "",
        "## Evaluation", "", *_evaluation_lines(evaluation), "",
        "## Recipe", "", "The resolved options of the run (`run_config.json` holds them all):", "",
        "```json", json.dumps(config, indent=2, sort_keys=True), "```", "",
    ]  # fmt: skip
    return ModelCard("\n".join(lines))


def write_model_card(directory: str | Path, run, evaluation, digest) -> Path:
    """Write ``directory/README.md``; returns its path."""
    path = Path(directory) / CARD_FILE
    model_card(run, evaluation, digest).save(path)
    return path


def _mask_sentence(meta: dict[str, Any]) -> str:
    return (
        f"under a **{meta.get('method')}** mask (ρ = {meta.get('ratio')}, γ = {meta.get('gamma')})"
    )


CHECKSUM_NOTE = (
    "Only the weights the mask selects changed; every other entry is bit-for-bit the base "
    "model's. The checksum below is the SHA-256 of those entries: "
    "`wagle.modelcard.unselected_digest(model, load_mask(mask))` gives the same value for the "
    "base model and for this one."
)


def _mask_cell(mask: dict[str, Any] | None) -> str:
    if not mask:
        return "dense (no mask)"
    meta = mask["metadata"]
    cell = f"score {meta.get('method')}, ratio {meta.get('ratio')}, γ {meta.get('gamma')}"
    if mask.get("path"):
        cell += f"; file `{Path(mask['path']).name}`, fingerprint `{mask['fingerprint']}`"
    return cell


def _evaluation_lines(evaluation: dict[str, Any] | None) -> list[str]:
    if evaluation is None:
        return ["Not evaluated while unlearning: `wagle evaluate --reference RETAIN_EVAL` on it."]
    reference = evaluation.get("reference")
    against = (
        f"against the retain reference `{reference['path']}` (model `{reference.get('model')}`)"
        if reference
        else "without a retain reference (no forget quality)"
    )
    rows = [
        f"| {POINT_FIGURES.get(name, name)} | {_number(value)} |"
        for name, value in evaluation["figures"].items()
        if value is not None
    ]
    return [f"From {evaluation['source']}, measured {against}:", "", "| figure | value |",
            "|---|---|", *rows]  # fmt: skip


def _inline(options: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in options.items()) or "none"


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
