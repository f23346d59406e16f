"""The report of a sequential study (``report.md`` and ``results.json``), from its saved
records alone: per sequence, a table of request × request set (forget quality and forget
ROUGE), whether earlier requests stay forgotten as later ones are applied, each request's
patch and the point its trajectory kept (eligible, or the last one because every point was
degenerate or below the utility floor), and the bit-for-bit checks of the patch chain; when a
setting ran with several seeds, a summary over them (mean ± sample standard deviation)."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

from wagle.experiment.sequential_figure import write_sequential_figure
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
        records = [_request(directory / f"{k}-{s}") for k, s in enumerate(requests, 1)]
        chain = _read(directory / "chain.json")
        sequences[directory.name] = {"requests": [r for r in records if r], "chain": chain}
    write_json(
        root / "results.json", {"requests": requests, "target": target, "sequences": sequences}
    )
    lines = [f"# Sequential forget requests: {' → '.join(requests)}", "", _intro(requests, target)]
    lines += seeds_summary(sequences, requests)
    figure = write_sequential_figure(
        root / "sequential.png", settings(sequences), set_labels(requests)
    )
    if figure is not None:
        lines += ["", f"![each set's forget quality after each request]({figure.name})", ""]
    for cell, sequence in sequences.items():
        lines += sequence_section(cell, sequence, requests, target)
    with atomic_file(root / "report.md") as handle:
        handle.write("\n".join(lines) + "\n")
    return root / "report.md"


def _request(directory: Path) -> dict[str, Any] | None:
    """A finished request's record, with the point its trajectory kept (``kept``)."""
    record, trajectory = _read(directory / "result.json"), _read(directory / "trajectory.json")
    if record is not None and trajectory is not None:
        point, criterion = trajectory["selected"], trajectory["criterion"]
        record["kept"] = {
            "eligible": criterion["met_floor"], "degenerate": point["degenerate"],
            "repetition": point["repetition"],
            "utility_below_floor": point["model_utility"] < criterion["utility_threshold"],
        }  # fmt: skip
    return record


def settings(sequences: dict[str, dict], finished: int = 1) -> dict[str, list[list[dict]]]:
    """Setting (the cell id without its seed) → each seed's records, for the sequences with
    at least ``finished`` requests done."""
    groups: dict[str, list[list[dict]]] = {}
    for cell, sequence in sequences.items():
        if len(sequence["requests"]) >= finished:
            groups.setdefault(re.sub(r"-s\d+$", "", cell), []).append(sequence["requests"])
    return groups


def seeds_summary(sequences: dict[str, dict], requests: list[str]) -> list[str]:
    """Settings run with ≥ 2 seeds whose every request finished: after the last request, each
    set's log10 forget quality and the utility; the first set's change from right after its
    own request, both against the last split's retain model (the change is the model's, not
    the reference's); the requests that kept an ineligible point. Mean ± sd over the seeds."""
    groups = {g: runs for g, runs in settings(sequences, len(requests)).items() if len(runs) >= 2}
    if not groups:
        return []
    labels, first = set_labels(requests), requests[0]
    head = ["setting", "seeds", "utility", *(labels[s] for s in requests),
            f"{first}: change", "kept ineligible"]  # fmt: skip
    lines = ["", "## Over seeds", "",
             f"After request {len(requests)}: mean ± sd over the seeds of the utility and of each "
             f"set's log10 forget quality; the change of {first}'s since right after its own "
             f"request, both against the retain model of {requests[-1]}; the requests whose "
             "trajectory had no eligible point (every point degenerate or below the utility "
             "floor: the last was kept).", "",
             _row(head), _row(["---"] * len(head))]  # fmt: skip
    for group, runs in groups.items():
        last = [run[-1] for run in runs]
        quality = [[_log10_value(r["sets"][s]["forget_quality"]) for r in last] for s in requests]
        change = [_log10_value(r[-1]["sets_last_reference"][first]["forget_quality"])
                  - _log10_value(r[0]["sets_last_reference"][first]["forget_quality"])
                  for r in runs]  # fmt: skip
        ineligible = sum(not r.get("kept", {}).get("eligible", True) for run in runs for r in run)
        lines.append(_row([
            group, str(len(runs)), _spread([r["utility"] for r in last], 3),
            *(_spread(q, 1) for q in quality), _spread(change, 1, signed=True),
            f"{ineligible} of {sum(map(len, runs))}",
        ]))  # fmt: skip
    return lines


def _spread(values: list[float], digits: int, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{statistics.mean(values):{sign}.{digits}f} ± {statistics.stdev(values):.{digits}f}"


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
            "outside mask", "patch bytes", "patch / model bytes", "steps (kept)",
            "kept point"]  # fmt: skip
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
            f"{r['steps']} ({r['selected_step']})", _kept(r.get("kept")),
        ]))  # fmt: skip
    return lines


def _kept(kept: dict | None) -> str:
    """Why the kept point is what it is: eligible, or the last one and what ruled every out."""
    if kept is None:
        return "—"
    if kept["eligible"]:
        return "eligible"
    why = [f"degenerate, repetition {kept['repetition']:.2f}"] if kept["degenerate"] else []
    why += ["utility below the floor"] if kept["utility_below_floor"] else []
    return f"none eligible: the last ({'; '.join(why) or 'no point after step 0'})"


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
