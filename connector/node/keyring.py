"""The node's keys and TLS certificates over a rotation: in force, published, retiring."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography import x509
from pydantic import BaseModel, ConfigDict, ValidationError

from connector.crypto.jws import PublicKey, SigningKey
from connector.crypto.keyfiles import certificate_fingerprint, read_signing_key
from connector.errors import ConfigError
from connector.protocol import PublishedIdentity
from connector.settings.config import Settings
from connector.storage.files import atomic_write

ROTATION_FILE = "rotation.json"


class Rotation(BaseModel):
    """One rotation under way: `old` (a kid, or a certificate fingerprint) is replaced by
    `new`, signed (or presented) from `activate_at`, and `old` retires at `not_after`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    old: str
    new: str
    activate_at: int  # NumericDate, as the statement says it
    not_after: int
    statement: str  # the compact JWS peers verify with a key they pin (protocol.md §9.1)

    def active(self, now: float) -> bool:
        return now >= self.activate_at

    def overlapping(self, now: float) -> bool:
        return now <= self.not_after


class Rotations(BaseModel):
    """`rotation.json` beside the key file: written by `keys` commands, read by the node."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: Rotation | None = None
    tls: Rotation | None = None


def _next(path: Path) -> Path:
    return path.with_name(f"{path.stem}.next{path.suffix}")


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPaths:
    """Where each key and certificate lives: in force (as connector.yaml names them) and next."""

    key: Path
    next_key: Path
    cert: Path
    cert_key: Path
    next_cert: Path
    next_cert_key: Path
    rotation: Path

    @classmethod
    def of(cls, settings: Settings) -> KeyPaths:
        key = settings.path(settings.key_file)
        cert, cert_key = settings.path(settings.tls.cert), settings.path(settings.tls.key)
        return cls(
            key=key,
            next_key=_next(key),
            cert=cert,
            cert_key=cert_key,
            next_cert=_next(cert),
            next_cert_key=_next(cert_key),
            rotation=key.parent / ROTATION_FILE,
        )


def read_rotations(path: Path) -> Rotations:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Rotations()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return Rotations.model_validate_json(data)
    except ValidationError as exc:
        raise ConfigError(f"{path} is not a rotation record: {exc.errors()[0]['msg']}") from exc


def write_rotations(path: Path, rotations: Rotations) -> None:
    doc = rotations.model_dump(mode="json")
    atomic_write(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n", mode=0o640)


@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    path: Path
    key: Path
    fingerprint: str
    not_after: float

    @classmethod
    def read(cls, path: Path, key: Path) -> Certificate:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the TLS certificate {path}: {exc.strerror}") from exc
        cert = x509.load_pem_x509_certificate(pem)
        return cls(
            path=path,
            key=key,
            fingerprint=certificate_fingerprint(pem),
            not_after=cert.not_valid_after_utc.timestamp(),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """A key or certificate a peer may meet, and until when (None: no end set)."""

    name: str  # a kid or a fingerprint
    state: str  # "current", "next" (published, not yet in force) or "retiring"
    not_after: float | None
    activate_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InForce:
    """What the node signs with and presents at one instant, and what it publishes."""

    signing: SigningKey
    public_keys: tuple[PublicKey, ...]
    keys: tuple[Published, ...]
    certificate: Certificate
    certificates: tuple[Published, ...]
    statements: tuple[str, ...]
    rotations: Rotations

    def identity(self) -> PublishedIdentity:
        not_after = {p.name: p.not_after for p in self.keys}
        jwks = []
        for key in self.public_keys:
            until = not_after.get(key.kid)
            jwks.append({**key.jwk(), **({"not_after": int(until)} if until else {})})
        return PublishedIdentity(
            keys=tuple(jwks),
            tls_fingerprint=self.certificate.fingerprint,
            tls_fingerprints=tuple(c.name for c in self.certificates),
            rotations=self.statements,
        )


def in_force(paths: KeyPaths, now: float) -> InForce:
    """Read the keys, certificates and rotation record: a rotation is published until its
    `activate_at`, in force from it, and the old one is published until its `not_after`."""
    rot = read_rotations(paths.rotation)
    current = read_signing_key(paths.key)
    keys = [Published(name=current.public.kid, state="current", not_after=None)]
    signing, public = current, [current.public]
    statements: list[str] = []
    if rot.key is not None:
        nxt = read_signing_key(paths.next_key)
        if rot.key.active(now):
            signing, public = nxt, [nxt.public]
            keys = [Published(name=nxt.public.kid, state="current", not_after=None)]
            if rot.key.overlapping(now):
                public.append(current.public)
                keys.append(
                    Published(
                        name=current.public.kid, state="retiring", not_after=rot.key.not_after
                    )
                )
        else:
            public.append(nxt.public)
            keys[0] = Published(
                name=current.public.kid, state="current", not_after=rot.key.not_after
            )
            keys.append(
                Published(
                    name=nxt.public.kid,
                    state="next",
                    not_after=None,
                    activate_at=rot.key.activate_at,
                )
            )
        if rot.key.overlapping(now):
            statements.append(rot.key.statement)
    cert = Certificate.read(paths.cert, paths.cert_key)
    served = cert
    certs = [Published(name=cert.fingerprint, state="current", not_after=None)]
    if rot.tls is not None:
        nxt_cert = Certificate.read(paths.next_cert, paths.next_cert_key)
        if rot.tls.active(now):
            served = nxt_cert
            certs = [Published(name=nxt_cert.fingerprint, state="current", not_after=None)]
            if rot.tls.overlapping(now):
                certs.append(
                    Published(name=cert.fingerprint, state="retiring", not_after=rot.tls.not_after)
                )
        else:
            certs[0] = Published(
                name=cert.fingerprint, state="current", not_after=rot.tls.not_after
            )
            certs.append(
                Published(
                    name=nxt_cert.fingerprint,
                    state="next",
                    not_after=None,
                    activate_at=rot.tls.activate_at,
                )
            )
        if rot.tls.overlapping(now):
            statements.append(rot.tls.statement)
    return InForce(
        signing=signing,
        public_keys=tuple(public),
        keys=tuple(keys),
        certificate=served,
        certificates=tuple(certs),
        statements=tuple(statements),
        rotations=rot,
    )


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class Keyring:
    """What is in force for a running node, re-read when `rotation.json` changes and at each
    step of a rotation under way; otherwise a refresh costs one stat()."""

    def __init__(self, paths: KeyPaths, *, clock: Callable[[], float]) -> None:
        self.paths = paths
        self.clock = clock
        self._stamp = _stamp(paths.rotation)
        self._read_at = clock()
        self.current = in_force(paths, self._read_at)
        self._identity = self.current.identity()

    def _steps(self) -> list[float]:
        rot = self.current.rotations
        return [
            t for r in (rot.key, rot.tls) if r is not None for t in (r.activate_at, r.not_after)
        ]

    def identity(self) -> PublishedIdentity:
        """What /v1/identity publishes; the same object until something in it changes."""
        return self._identity

    def refresh(self) -> InForce | None:
        """What is in force now, when it differs from before (else None): read again when
        the record changed or a rotation's `activate_at` or `not_after` has come since."""
        stamp, now = _stamp(self.paths.rotation), self.clock()
        if stamp == self._stamp and not any(self._read_at <= step <= now for step in self._steps()):
            return None
        fresh = in_force(self.paths, now)
        self._stamp, self._read_at = stamp, now
        if fresh == self.current:
            return None
        self.current = fresh
        identity = fresh.identity()
        if identity != self._identity:
            self._identity = identity
        return fresh

    def certificate_expires(self) -> float:
        return self.current.certificate.not_after


def expiry(when: float | None) -> str | None:
    """An instant as `keys` commands and events say it: ISO 8601, UTC, to the second."""
    return None if when is None else datetime.fromtimestamp(int(when), UTC).isoformat()
