"""Files written whole: a reader sees the old file or the new one, and a crash loses neither;
the one kind appended to, line by line under a lock; a lock processes take turns on."""

from __future__ import annotations

import fcntl
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


@contextmanager
def locked_append(path: Path, *, mode: int = 0o600) -> Iterator[BinaryIO]:
    """`path` opened to read and to append to, created `mode` if missing, under an exclusive
    lock (flock) held until the block ends: two writers at once take turns, each reading
    the end the other left. What the block wrote is synced to disk before the lock is let
    go (and the directory too, when the file is new). Only a write at the end can change
    the file; the caller may cut it shorter (`truncate`), never rewrite what stays.

    A file created while we run as root is given the directory's owner and group: an
    admin's `sudo` must not leave a file the service user cannot append to."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
    try:
        fd = os.open(path, flags | os.O_EXCL, mode)
        created = True
    except FileExistsError:
        fd = os.open(path, flags)
        created = False
    with os.fdopen(fd, "r+b") as fh:
        if created:
            os.fchmod(fd, mode)  # os.open's mode passed through the umask
            if os.geteuid() == 0:
                owner = path.parent.stat()
                os.fchown(fd, owner.st_uid, owner.st_gid)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fh
        fh.flush()
        os.fsync(fd)
    if created:
        _sync_directory(path.parent)


def read_locked(path: Path) -> bytes | None:
    """A file appended to under `locked_append`, read whole under a shared lock: never with
    half a line a writer is adding. None when there is no such file."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return None
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        return fh.read()


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


class TurnLock:
    """An exclusive lock (flock) several processes take turns on, around something they
    all do: the file stays open, so a turn costs two system calls, and a process waiting
    is woken the moment the lock is let go (SQLite's own wait for its write lock sleeps
    1, 2, 5, 10 … ms between tries). Within one process, one thread at a time."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)
