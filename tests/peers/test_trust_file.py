"""peers.yaml read through the one reader of admin-edited YAML, and written back unchanged."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from connector.crypto.jws import SigningKey
from connector.errors import TrustStoreError
from connector.peers.trust import dump_trust_store, load_trust_store

FINGERPRINT = ":".join(["AB"] * 32)


def _peer(node: str, key: SigningKey, *, url: str | None = None) -> str:
    jwk = orjson.dumps(key.public.jwk()).decode()
    return (
        f"  - id: {node}\n"
        f"    url: {url or f'https://ncb.{node.lower()}.example:8443'}\n"
        f"    keys:\n"
        f"      - jwk: {jwk}\n"
        f'    tls_fingerprint: "{FINGERPRINT}"\n'
    )


def test_norway_is_a_peer_not_false(tmp_path: Path) -> None:
    # YAML 1.1 reads a bare NO as false; peers.yaml once failed on it with "Input should be a
    # valid string" and no line.
    path = tmp_path / "peers.yaml"
    path.write_text("peers:\n" + _peer("NO", SigningKey.generate()), encoding="utf-8")
    store = load_trust_store(path)
    assert list(store.peers) == ["NO"]
    assert store.peers["NO"].url == "https://ncb.no.example:8443"


def test_an_error_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "peers.yaml"
    text = (
        "peers:\n"
        + _peer("NO", SigningKey.generate())
        + _peer("SE", SigningKey.generate(), url="ftp://ncb.se.example")
    )
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TrustStoreError) as caught:
        load_trust_store(path)
    url_line = text.splitlines().index("    url: ftp://ncb.se.example") + 1
    assert caught.value.detail.startswith(f"{path}:{url_line}:10: peers.1.url: String should ")


def test_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "peers.yaml"
    text = "peers:\n" + _peer("NO", SigningKey.generate()).replace(
        "    keys:", "    url: https://twice.example\n    keys:"
    )
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TrustStoreError, match=r"peers\.yaml:4:5: duplicate key 'url'"):
        load_trust_store(path)


def test_missing_and_empty_files_are_empty_stores(tmp_path: Path) -> None:
    path = tmp_path / "peers.yaml"
    assert not load_trust_store(path).peers
    path.write_text("# no peers yet\n", encoding="utf-8")
    assert not load_trust_store(path).peers


def test_dump_of_a_loaded_file_is_the_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "peers.yaml"
    path.write_text(
        "peers:\n" + _peer("NO", SigningKey.generate()) + _peer("DE", SigningKey.generate()),
        encoding="utf-8",
    )
    written = dump_trust_store(load_trust_store(path))
    path.write_text(written, encoding="utf-8")
    assert dump_trust_store(load_trust_store(path)) == written
    assert "- id: 'NO'\n" in written  # quoted, so that any YAML 1.1 reader keeps Norway
