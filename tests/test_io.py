"""Atomic outputs: replaced only on success, and readable like any file the user makes."""

import os
import stat

import pytest

from wagle.io import atomic_dir, atomic_file, write_json


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_written_file_and_directory_get_the_umask_mode_not_a_private_one(tmp_path, umask_022):
    """mkstemp/mkdtemp create 0600/0700; a result file must come out 0644, a run dir 0755."""
    write_json(tmp_path / "r.json", {"a": 1})
    with atomic_dir(tmp_path / "run") as tmp:
        (tmp / "x").write_text("x")
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755


def test_a_failed_write_leaves_neither_the_output_nor_a_temporary(tmp_path):
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "out.txt") as handle:
        handle.write("half")
        raise RuntimeError("crash")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "model") as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
