"""The one atomic writer: the target is whole or untouched, and no temporary file is left behind."""

from __future__ import annotations

import pytest

from every8d import atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as temporary:
        temporary.write_text("half")
        (temporary.parent / (temporary.name + ".wal")).write_text("log")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_finished_write_replaces_the_file_from_beside_it(tmp_path):
    target = tmp_path / "data.parquet"
    seen = []
    with atomic.atomic_path(target) as temporary:
        seen.append(temporary)
        temporary.write_bytes(b"new")
        assert not target.exists()  # readers see nothing until the rename
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".data.parquet.")
    atomic.write_bytes(target, b"newer")
    assert target.read_bytes() == b"newer" and [p.name for p in tmp_path.iterdir()] == ["data.parquet"]
