"""The trust store (`peers.yaml`): which peers we know, their pinned keys and TLS fingerprints."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from connector.crypto.jws import PublicKey
from connector.errors import TrustStoreError
from connector.settings.yamlfile import load_yaml_model
from connector.storage.files import atomic_write

# libyaml's safe dumper when PyYAML has it: the same documents, ten times faster, which a
# demo writing fifty peers feels.
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_HEX_FP = re.compile(r"^(sha256:)?([0-9A-Fa-f]{2}(:?[0-9A-Fa-f]{2}){31})$")


def normalise_fingerprint(text: str) -> str:
    """`AB:CD:…` (64 hex digits, colons optional, `sha256:` prefix optional) → `AB:CD:…`."""
    m = _HEX_FP.match(text.strip())
    if not m:
        raise ValueError("a TLS fingerprint is the SHA-256 of the certificate: 64 hex digits")
    digits = m.group(2).replace(":", "").upper()
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


def fingerprint_bytes(fp: str) -> bytes:
    return bytes.fromhex(fp.replace(":", ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class PinnedKey:
    key: PublicKey
    not_after: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.not_after is None or now <= self.not_after


@dataclass(frozen=True, slots=True, kw_only=True)
class PinnedFingerprint:
    """A TLS certificate fingerprint still accepted until `not_after` (a peer renewed it)."""

    fingerprint: str
    not_after: datetime

    def valid_at(self, now: datetime) -> bool:
        return now <= self.not_after


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    id: str
    url: str
    keys: tuple[PinnedKey, ...]
    tls_fingerprint: str | None = None
    # Certificates the peer has replaced, accepted beside `tls_fingerprint` until each one's
    # not_after: a connection made before the peer swapped its certificate must not fail.
    retiring_tls: tuple[PinnedFingerprint, ...] = ()
    insecure: bool = False

    def tls_fingerprints(self, now: datetime) -> tuple[str, ...]:
        """Every certificate fingerprint accepted for this peer at `now`, the newest first."""
        if self.tls_fingerprint is None:
            return ()
        return (
            self.tls_fingerprint,
            *(p.fingerprint for p in self.retiring_tls if p.valid_at(now)),
        )

    def current_key(self, now: datetime) -> PinnedKey | None:
        valid = [k for k in self.keys if k.valid_at(now)]
        return valid[0] if valid else None

    def key_by_kid(self, kid: str) -> PinnedKey | None:
        return next((k for k in self.keys if k.key.kid == kid), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustStore:
    peers: Mapping[str, Peer]
    by_kid: Mapping[str, tuple[str, PinnedKey]]

    @classmethod
    def of(cls, peers: Iterable[Peer]) -> TrustStore:
        table: dict[str, Peer] = {}
        kids: dict[str, tuple[str, PinnedKey]] = {}
        for peer in peers:
            if peer.id in table:
                raise TrustStoreError(f"peer {peer.id} is listed twice")
            table[peer.id] = peer
            for pinned in peer.keys:
                owner = kids.get(pinned.key.kid)
                if owner is not None and owner[0] != peer.id:
                    raise TrustStoreError(
                        f"key {pinned.key.kid} is pinned for both {owner[0]} and {peer.id}"
                    )
                kids[pinned.key.kid] = (peer.id, pinned)
        return cls(peers=table, by_kid=kids)

    def resolve(self, kid: str, now: datetime) -> tuple[str, PublicKey] | None:
        found = self.by_kid.get(kid)
        if found is None or not found[1].valid_at(now):
            return None
        return found[0], found[1].key

    def get(self, peer_id: str) -> Peer | None:
        return self.peers.get(peer_id)

    def with_peer(self, peer: Peer) -> TrustStore:
        return TrustStore.of([*(p for p in self.peers.values() if p.id != peer.id), peer])

    def without(self, peer_id: str) -> TrustStore:
        return TrustStore.of(p for p in self.peers.values() if p.id != peer_id)


# --- the file -------------------------------------------------------------------------------


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jwk: dict[str, Any]
    not_after: datetime | None = None


class _FingerprintEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fingerprint: str
    not_after: datetime


class _PeerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,8})?$")]
    url: Annotated[str, StringConstraints(pattern=r"^https?://")]
    keys: Annotated[list[_KeyEntry], Field(min_length=1)]
    tls_fingerprint: str | None = None
    retiring_tls_fingerprints: list[_FingerprintEntry] = Field(default_factory=list)
    insecure: bool = False


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    peers: list[_PeerEntry] = Field(default_factory=list)


def _peer_from_entry(entry: _PeerEntry, where: str) -> Peer:
    keys = []
    for i, k in enumerate(entry.keys):
        try:
            key = PublicKey.from_jwk(k.jwk)
        except ValueError as exc:
            raise TrustStoreError(f"{where}: peer {entry.id}: keys[{i}]: {exc}") from exc
        not_after = None if k.not_after is None else _aware(k.not_after)
        keys.append(PinnedKey(key=key, not_after=not_after))
    fp = None
    if entry.tls_fingerprint is not None:
        try:
            fp = normalise_fingerprint(entry.tls_fingerprint)
        except ValueError as exc:
            raise TrustStoreError(f"{where}: peer {entry.id}: tls_fingerprint: {exc}") from exc
    retiring = []
    for i, r in enumerate(entry.retiring_tls_fingerprints):
        try:
            old = normalise_fingerprint(r.fingerprint)
        except ValueError as exc:
            raise TrustStoreError(
                f"{where}: peer {entry.id}: retiring_tls_fingerprints[{i}]: {exc}"
            ) from exc
        retiring.append(PinnedFingerprint(fingerprint=old, not_after=_aware(r.not_after)))
    if retiring and fp is None:
        raise TrustStoreError(
            f"{where}: peer {entry.id}: retiring_tls_fingerprints needs tls_fingerprint"
        )
    if entry.url.startswith("https://") and fp is None:
        # `insecure` means plain HTTP, never TLS without a pin.
        raise TrustStoreError(f"{where}: peer {entry.id}: an https peer needs tls_fingerprint")
    if entry.url.startswith("http://") and not entry.insecure:
        raise TrustStoreError(f"{where}: peer {entry.id}: plain http needs insecure: true")
    return Peer(
        id=entry.id,
        url=entry.url.rstrip("/"),
        keys=tuple(keys),
        tls_fingerprint=fp,
        retiring_tls=tuple(retiring),
        insecure=entry.insecure,
    )


def load_trust_store(path: Path) -> TrustStore:
    """Read peers.yaml; a missing or empty file is an empty trust store, a broken one an
    error naming file, line and key (the reader of every admin-edited YAML file: `id: NO`
    is Norway, a duplicate key is refused)."""
    if not path.exists():
        return TrustStore.of([])
    parsed = load_yaml_model(path, _File, error=TrustStoreError, empty_ok=True)
    return TrustStore.of(_peer_from_entry(e, str(path)) for e in parsed.peers)


def dump_trust_store(store: TrustStore) -> str:
    peers = []
    for p in sorted(store.peers.values(), key=lambda p: p.id):
        entry: dict[str, Any] = {"id": p.id, "url": p.url, "keys": []}
        for k in p.keys:
            key_entry: dict[str, Any] = {"jwk": {kk: v for kk, v in k.key.jwk().items()}}
            if k.not_after is not None:
                key_entry["not_after"] = k.not_after.isoformat()
            entry["keys"].append(key_entry)
        if p.tls_fingerprint:
            entry["tls_fingerprint"] = p.tls_fingerprint
        if p.retiring_tls:
            entry["retiring_tls_fingerprints"] = [
                {"fingerprint": r.fingerprint, "not_after": r.not_after.isoformat()}
                for r in p.retiring_tls
            ]
        if p.insecure:
            entry["insecure"] = True
        peers.append(entry)
    header = "# Trust store: the peers this node answers and asks. Edit: `ncb-connector peers`.\n"
    return header + yaml.dump({"peers": peers}, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def save_trust_store(path: Path, store: TrustStore) -> None:
    """Write atomically so a running node reloading on SIGHUP never sees half a file; the old
    file's mode and owner carry over."""
    data = dump_trust_store(store).encode("utf-8")
    atomic_write(path, data, mode=0o640, like_existing=True)


def replace_url(peer: Peer, url: str) -> Peer:
    return replace(peer, url=url)
