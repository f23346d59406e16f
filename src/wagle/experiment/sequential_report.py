"""The report of a sequential study (``report.md`` and ``results.json``), from its saved
records alone: per sequence, a table of request × request set (forget quality and forget
ROUGE), whether earlier requests stay forgotten as later ones are applied, each request's
patch, and the bit-for-bit checks of the patch chain."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from wagle.io import atomic_file, write_json


def is_sequential_dir(root: str | Path) -> bool:
    """Whether ``root`` is the output of a sequential study (its recipe has requests)."""
    path = Path(root) / "recipe.json"
    return path.is_file() and bool(json.loads(path.read_text()).get("sequential"))


def write_sequential_report(root: str | Path) -> Path:
    """Write ``root/report.md`` and ``root/results.json``; returns the report's path."""
    root = Path(root)
    recipe = json.loads((root / "recipe.json").read_text())
    requests = recipe["sequential"]["requests"]
    target = json.loads((root / "target" / "sets.json").read_text())
    sequences = {}
    for directory in sorted((root / "sequences").iterdir()):
        records = [_read(directory / f"{k}-{s}" / "result.json") for k, s in enumerate(requests, 1)]
        chain = _read(directory / "chain.json")
        sequences[directory.name] = {"requests": [r for r in records if r], "chain": chain}
    write_json(
        root / "results.json", {"requests": requests, "target": target, "sequences": sequences}
    )
    lines = [f"# Sequential forget requests: {' → '.join(requests)}", "", _intro(requests, target)]
    for cell, sequence in sequences.items():
        lines += sequence_section(cell, sequence, requests, target)
    with atomic_file(root / "report.md") as handle:
        handle.write("\n".join(lines) + "\n")
    return root / "report.md"


def set_labels(requests: list[str]) -> dict[str, str]:
    """forget01, forget05 − forget01, forget10 − forget05, ..."""
    return {s: s if i == 0 else f"{s} − {requests[i - 1]}" for i, s in enumerate(requests)}


def sequence_section(cell: str, sequence: dict, requests: list[str], target: dict) -> list[str]:
    records, labels = sequence["requests"], set_labels(requests)
    if not records:
        return [f"## {cell}", "", "no request finished yet", ""]
    n = {s: target["sets"][s]["n"] for s in requests}
    head = ["model", "utility", *(f"{labels[s]} ({n[s]})" for s in requests)]
    rule = ["---"] * len(head)

    def rows(figure, fmt) -> list[str]:
        table = [_row(head), _row(rule)]
        table.append(
            _row(
                [
                    "target",
                    _f(target["utility"], 3),
                    *(fmt(target["sets"][s], figure) for s in requests),
                ]
            )
        )
        for r in records:
            cells = [fmt(r["sets"][s], figure) if s in r["sets"] else "·" for s in requests]
            table.append(
                _row([f"after {r['request']} ({r['split']})", _f(r["utility"], 3), *cells])
            )
        return table

    lines = [f"## {cell}", ""]
    lines += ["Forget quality of each request's set, log10 of the KS p-value (0 = as the retain "
              "model; the target row against the retain model of the last split):", ""]  # fmt: skip
    lines += rows("forget_quality", lambda f, k: _log10(f[k]))
    lines += ["", "Forget ROUGE-L recall of each set (the retain model's in parentheses):", ""]
    lines += rows("forget_rouge", lambda f, k: f"{f[k]:.3f} ({f['reference_rouge']:.3f})")
    lines += [
        "",
        *drift_lines(records, labels, requests[-1]),
        "",
        *patch_table(records),
        "",
        chain_line(sequence["chain"], len(records)),
        "",
    ]
    return lines


def drift_lines(records: list[dict], labels: dict[str, str], last_split: str) -> list[str]:
    """For every set requested before the last request: its figures right after its own
    request and after the last one, against that row's retain model and against the last
    split's retain model for both (one reference: the change is the model's alone)."""
    if len(records) < 2:
        return []
    last = records[-1]
    lines = [
        f"Do earlier requests stay forgotten? Each set right after its own request → after "
        f"request {last['request']}: log10 forget quality against each row's retain model, "
        f"[against the retain model of {last_split} for both], forget ROUGE and probability:",
        "",
    ]
    for first in records[:-1]:
        split = first["split"]
        a, b = first["sets"][split], last["sets"][split]
        fixed_a = first.get("sets_last_reference", {}).get(split, a)
        fixed_b = last.get("sets_last_reference", {}).get(split, b)
        lines.append(
            f"- {labels[split]}: {_change(a, b)} [{_change(fixed_a, fixed_b)}]; forget ROUGE "
            f"{a['forget_rouge']:.3f} → {b['forget_rouge']:.3f} (retain model "
            f"{a['reference_rouge']:.3f} → {b['reference_rouge']:.3f}); forget probability "
            f"{a['forget_probability']:.3f} → {b['forget_probability']:.3f}"
        )
    return lines


def _change(a: dict, b: dict) -> str:
    change = _log10_value(b["forget_quality"]) - _log10_value(a["forget_quality"])
    return f"{_log10(a['forget_quality'])} → {_log10(b['forget_quality'])} ({change:+.1f})"


def patch_table(records: list[dict]) -> list[str]:
    head = ["request", "forget records", "mask selected", "changed weights", "changed / mask",
            "outside mask", "patch bytes", "patch / model bytes", "steps (kept)"]  # fmt: skip
    lines = [
        "Patches (one per request, against the model the previous request left):",
        "",
        _row(head),
        _row(["---"] * len(head)),
    ]
    for r in records:
        p, selected = r["patch"], r["mask"]["selected"]
        lines.append(_row([
            f"{r['request']} ({r['split']})", f"{r['n_forget']:,}", "all" if selected is None else f"{selected:,}",
            f"{p['entries']:,}", "—" if not selected else f"{p['entries'] / selected:.3f}",
            f"{p['outside_mask']:,}", f"{p['bytes']:,}", f"{p['bytes_over_model']:.3f}",
            f"{r['steps']} ({r['selected_step']})",
        ]))  # fmt: skip
    return lines


def chain_line(chain: dict[str, Any] | None, n: int) -> str:
    if not chain:
        return "Patch chain: not checked yet (the sequence has not finished)."
    ok = {True: "yes", False: "**NO**"}
    return (
        f"Patch chain, bit for bit: target + the {n} patches = the final model: "
        f"{ok[chain['target_plus_patches_is_final']]}; their composition "
        f"({chain['composed_entries']:,} entries) = the final model: "
        f"{ok[chain['composed_patch_is_final']]}; reverting them in reverse order gives the "
        f"target: {ok[chain['reverted_is_target']]}."
    )


def _intro(requests: list[str], target: dict) -> str:
    sizes = ", ".join(f"{s}: {target['sets'][s]['n']}" for s in requests)
    return (
        f"Requests arrive in order; each forgets the records of its split not forgotten before "
        f"({sizes} records). After each request the model is evaluated on the cumulative split "
        "and every set so far is scored against the retain model of that split (trained "
        "without any of them)."
    )


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _log10_value(p: float | None) -> float:
    return float("nan") if p is None else (math.log10(p) if p > 0 else -math.inf)


def _log10(p: float | None) -> str:
    return "—" if p is None else f"{_log10_value(p):.1f}"


def _f(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
