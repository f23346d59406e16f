"""Atomic writes and fingerprints: a crash never leaves an output that looks complete."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wagle.errors import WagleError


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory that is renamed to ``path`` only on success.

    An existing ``path`` is replaced. On failure the temporary directory is removed, so a
    half-written model or data set never sits under the final name.
    """
    path = Path(path)
    parent = ensure_writable_dir(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; outputs get the usual mode
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling file for writing; it replaces ``path`` when the block succeeds."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; outputs get the usual mode
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_file(path) as handle:
        json.dump(obj, handle, indent=2, sort_keys=False)
        handle.write("\n")


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and check we may write there; a user error otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WagleError(f"cannot create directory {path}: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise WagleError(f"directory {path} is not writable; choose another location")
    return path


def fingerprint(*paths: str | os.PathLike, length: int = 16) -> str:
    """SHA-256 over the bytes of files (directories: their files in sorted order)."""
    digest = hashlib.sha256()
    for path in map(Path, paths):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(file.name.encode())
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:length]


def hash_config(obj: Any, length: int = 12) -> str:
    """A short stable hash of a JSON-serialisable configuration."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:length]


def wagle_home() -> Path:
    """Where wagle caches what it builds: ``$WAGLE_HOME``, else ``$XDG_CACHE_HOME/wagle``."""
    if os.environ.get("WAGLE_HOME"):
        return Path(os.environ["WAGLE_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "wagle"
