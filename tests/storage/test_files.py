"""atomic_write: whole files, the mode each caller asks for, and nothing left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from connector.storage.files import atomic_write


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
