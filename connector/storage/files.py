"""Files written whole: a reader sees the old file or the new one, and a crash loses neither."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def atomic_write(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o600,
    like_existing: bool = False,
    exclusive: bool = False,
) -> None:
    """Write `data` to `path` through a temporary file in the same directory, synced to disk
    before it takes the name and the directory synced after, so that neither a reader nor a
    power cut ever meets half a file.

    The file gets `mode`; with `like_existing`, a file already there passes on its mode and,
    when we run as root, its owner (an admin running a command as root must not leave a file
    the service user cannot read). With `exclusive`, an existing file is never replaced:
    FileExistsError, as for O_EXCL.
    """
    with atomic_file(path, mode=mode, like_existing=like_existing, exclusive=exclusive) as fh:
        fh.write(data)


@contextmanager
def atomic_file(
    path: Path,
    *,
    mode: int = 0o600,
    like_existing: bool = False,
    exclusive: bool = False,
) -> Iterator[BinaryIO]:
    """`atomic_write` for a file written piece by piece (an archive, a database copy): the
    caller writes to the file given; it takes `path` only when the block ends without an
    exception, and otherwise is removed."""
    directory = path.parent
    # mkstemp creates the file 0600, so it is never readable by others before its chmod.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        existing = _stat(path) if like_existing else None
        if existing is None:
            os.chmod(tmp, mode)
        else:
            os.chmod(tmp, existing.st_mode & 0o777)
            if os.geteuid() == 0:
                os.chown(tmp, existing.st_uid, existing.st_gid)
        if exclusive:
            os.link(tmp, path)  # fails if the name is taken, where os.replace would not
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_directory(directory)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _sync_directory(directory: Path) -> None:
    # The new name lives in the directory: until the directory is synced, a crash may bring
    # back the old file (or none) even though the data itself reached the disk.
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
