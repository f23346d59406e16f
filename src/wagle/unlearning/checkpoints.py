"""Checkpoints of an unfinished run, and resuming from the latest (``--save-every``, ``--resume``).

With ``save_every`` N > 0 the Trainer saves a checkpoint every N optimizer steps into
``<out>/checkpoints/checkpoint-<step>/`` (the stock ``save_strategy="steps"``; the last two are
kept): the weights (safetensors), the optimizer and scheduler state, the RNG states and
``trainer_state.json``, written by the Trainer, plus wagle's own state, written last:

    wagle_best.safetensors   the trajectory's best weights so far (when one was copied)
    wagle_state.json         the run's options, the step log and the trajectory's points

A checkpoint is complete once ``wagle_state.json`` is there (written atomically after the
Trainer's files), so a kill while saving leaves the previous one as the latest. ``<out>`` is
replaced atomically by the finished run, which deletes the checkpoints with it.

The optimizer, scheduler and RNG files are the Trainer's ``torch.save`` pickles; wagle only
reads ones it wrote itself, and the Trainer reads them with torch's weights-only unpickler.

This module imports no torch: ``check_resume`` runs before any model is loaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from wagle.errors import WagleError

CHECKPOINTS = "checkpoints"
STATE_FILE = "wagle_state.json"
BEST_FILE = "wagle_best.safetensors"
IGNORED_OPTIONS = ("progress", "out")  # may differ (out: spelt another way, same directory)
_NAME = re.compile(r"checkpoint-(\d+)")


def checkpoint_root(out: str | Path) -> Path:
    return Path(out) / CHECKPOINTS


def checkpoints(out: str | Path) -> list[Path]:
    """The complete checkpoints under ``out``, oldest step first."""
    root = checkpoint_root(out)
    found = [
        (int(m.group(1)), p)
        for p in (root.iterdir() if root.is_dir() else [])
        if (m := _NAME.fullmatch(p.name)) and (p / STATE_FILE).is_file()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out: str | Path) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def check_resume(out: str | Path, resume: bool, overwrite: bool) -> None:
    """``--resume`` needs a checkpoint; without it, an unfinished run's checkpoints need
    ``--overwrite`` (start again) rather than being silently overwritten."""
    if resume and overwrite:
        raise WagleError("--resume continues a run and --overwrite starts it again: pass one")
    root = checkpoint_root(out)
    if resume and latest_checkpoint(out) is None:
        raise WagleError(
            f"--resume: no checkpoint in {root} (a run saves one every --save-every steps)"
        )
    if not resume and not overwrite and root.is_dir() and any(root.iterdir()):
        raise WagleError(
            f"{out} holds checkpoints of an unfinished run: pass --resume to continue it "
            "or --overwrite to start again"
        )


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / STATE_FILE).read_text())


def resumable(out: str | Path, run: dict[str, Any], options: dict[str, Any]) -> bool:
    """Whether ``out`` holds a checkpoint of this very run (its options), for callers that
    resume what they can and start the rest afresh (``wagle run`` cells)."""
    latest = latest_checkpoint(out)
    if latest is None:
        return False
    try:
        check_same_run(read_state(latest), run, options)
    except WagleError:
        return False
    return True


def check_same_run(
    saved: dict[str, Any], run: dict[str, Any], options: dict[str, Any] | None = None
) -> None:
    """A resumed run must have the checkpoint's options (``IGNORED_OPTIONS`` aside); the
    method's are compared too unless ``options`` is None."""
    ours = {"run": run} if options is None else {"run": run, "method_options": options}
    ours = json.loads(json.dumps(ours))  # as saved: tuples become lists
    for section, values in ours.items():
        theirs = saved.get(section, {})
        for key in sorted(set(values) | set(theirs)):
            if key not in IGNORED_OPTIONS and values.get(key) != theirs.get(key):
                raise WagleError(
                    f"--resume: the checkpoint was made with {key}={theirs.get(key)!r}, "
                    f"this run has {key}={values.get(key)!r}; resume with the same options"
                )
