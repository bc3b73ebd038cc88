"""atomic_write: whole files, the mode each caller asks for, and nothing left behind;
locked_append: appends under a lock, by root too, that the service user can go on with."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from connector.storage.files import atomic_write, locked_append, read_locked


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_mode_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write(path, b"{}")
    assert path.read_bytes() == b"{}"
    assert _mode(path) == 0o600
    atomic_write(path, b'{"a": 1}', mode=0o640)
    assert path.read_bytes() == b'{"a": 1}'
    assert _mode(path) == 0o640
    assert os.listdir(tmp_path) == ["state.json"]


def test_like_existing_keeps_the_old_mode(tmp_path: Path) -> None:
    path = tmp_path / "peers.yaml"
    atomic_write(path, b"peers: []\n", mode=0o640, like_existing=True)
    assert _mode(path) == 0o640
    path.chmod(0o644)
    atomic_write(path, b"peers: []\n# edited\n", mode=0o640, like_existing=True)
    assert _mode(path) == 0o644
    assert path.read_bytes().endswith(b"# edited\n")


def test_exclusive_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "node.jwk"
    atomic_write(path, b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write(path, b"second", exclusive=True)
    assert path.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["node.jwk"]


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "agencies.json"
    atomic_write(path, b"old")
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["agencies.json"]


def test_locked_append_creates_the_file_with_its_mode_and_only_ever_appends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "trail.jsonl"
    assert read_locked(path) is None
    old = os.umask(0o077)
    try:
        with locked_append(path, mode=0o640) as fh:
            fh.write(b"one\n")
    finally:
        os.umask(old)
    assert _mode(path) == 0o640  # as asked, whatever the umask
    with locked_append(path) as fh:
        fh.seek(0)
        assert fh.read() == b"one\n"
        fh.seek(0)
        fh.write(b"two\n")  # O_APPEND: at the end, wherever the caller stood
    assert read_locked(path) == b"one\ntwo\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_a_file_root_creates_belongs_to_the_directory_owner(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)  # the service user's directory
    with locked_append(state / "trail.jsonl") as fh:
        fh.write(b"x\n")
    st = (state / "trail.jsonl").stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
