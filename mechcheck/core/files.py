"""Writing a file so that a reader sees the old one or the new one, never a half-written one.

Why one helper: reports, cached checkpoints, the cached tokenizer and the scheduler's group files
are all read by later runs, some by parallel workers; a torn file there is a wrong result, not a
crash.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write_with(path: Path, write: Callable[[str], None]) -> None:
    """write(tmp) to a temporary file beside `path`, then rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically, flushed to disk before the rename."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    atomic_write_with(path, write)


def publish_dir(built: Path, target: Path) -> None:
    """Move the folder `built` onto `target` in one rename; when another process got there first,
    keep theirs (the same content) and drop ours."""
    try:
        os.replace(built, target)
    except OSError:
        shutil.rmtree(built, ignore_errors=True)
