"""Files that appear whole or not at all: write beside the target, flush to disk, rename into place.

Readers (the report's browser, the analysts' DuckDB, a task's retry) must never
see half a file, and a crash must not leave one under the real name.  The
temporary file sits in the target's folder (``os.replace`` is atomic only
within one file system) under a hidden, unique name, so two writers never
share one; it is removed when the write fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(target: str | os.PathLike[str], *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on leaving the block it is synced and renamed to ``target``.

    Files the writer leaves beside the temporary one (a DuckDB ``.wal``) are removed too.
    ``durable=False`` skips the syncs (the rename stays atomic): for scratch files that a crash
    loses with their folder anyway, such as a sync's page spools.
    """
    target = Path(target)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield temporary
        if durable:
            _fsync(temporary)
        os.replace(temporary, target)
        if durable and os.name == "posix":  # the rename itself survives a power cut once the folder is synced
            _fsync(target.parent)
    finally:
        for leftover in (temporary, temporary.with_name(temporary.name + ".wal")):
            leftover.unlink(missing_ok=True)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """``target`` holds ``data``, whole, or keeps what it held."""
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)
