"""``--push-to-hub REPO_ID``: upload an unlearned model directory (model, tokenizer, model card,
run records) and its mask to the Hugging Face Hub, in one commit with huggingface_hub.

What is uploaded is ``upload_files``: every file of the directory except the tracker's event
files (``runs/``), checkpoints and the last-step copy (``last/``), plus the mask file as
``mask.safetensors``. Credentials are huggingface_hub's own (``HF_TOKEN`` or ``hf auth login``).
"""

from __future__ import annotations

import re
from pathlib import Path

from wagle import __version__
from wagle.errors import WagleError

MASK_IN_REPO = "mask.safetensors"
LEFT_OUT = ("runs", "checkpoints", "last")  # top-level folders that stay local
_REPO_ID = re.compile(r"^([\w.-]+/)?[\w.-]+$")


def check_repo_id(repo_id: str) -> None:
    """``name`` or ``owner/name`` (letters, digits, ``-``, ``_``, ``.``); a user error otherwise."""
    if not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith((".git", "-", ".")):
        raise WagleError(f"--push-to-hub {repo_id!r} is not a Hub repository id (owner/name)")


def upload_files(directory: str | Path, mask: str | None = None) -> dict[str, Path]:
    """``{path in the repository: local file}`` of what ``push_to_hub`` uploads."""
    root = Path(directory)
    files = {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] not in LEFT_OUT
    }
    if mask:
        files[MASK_IN_REPO] = Path(mask)
    return files


def push_to_hub(directory: str | Path, repo_id: str, mask: str | None = None) -> str:
    """Create ``repo_id`` if needed and upload ``upload_files`` in one commit; its URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", exist_ok=True)
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path))
        for name, path in upload_files(directory, mask).items()
    ]
    info = api.create_commit(
        repo_id,
        operations,
        commit_message=f"Upload {Path(directory).name} (unlearned with wagle {__version__})",
    )
    return str(getattr(info, "commit_url", info))
