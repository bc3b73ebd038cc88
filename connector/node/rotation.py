"""Rotating the node's signing key or TLS certificate on an admin's command, and tidying after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from connector.crypto.jws import Signer, SigningKey
from connector.crypto.keyfiles import (
    make_tls_certificate,
    read_signing_key,
    write_private,
    write_signing_key,
)
from connector.errors import ConfigError
from connector.node.keyring import (
    Certificate,
    InForce,
    KeyPaths,
    Rotation,
    Rotations,
    expiry,
    in_force,
    read_rotations,
    write_rotations,
)
from connector.protocol import sign_rotation
from connector.settings.config import Settings
from connector.storage.files import atomic_write

Kind = Literal["key", "tls"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Started:
    """What a `keys rotate` or `keys renew-tls` did: the rotation now recorded, and the
    finished rotations whose files it tidied first."""

    kind: Kind
    rotation: Rotation
    tidied: tuple[Kind, ...]
    activated: bool = False


def tidy(paths: KeyPaths, now: float) -> tuple[Kind, ...]:
    """A rotation past its overlap is over: its new key (certificate) takes the place of the
    old in the files connector.yaml names, and the old private key is deleted (it signs
    nothing any more, and a kept private key could only leak). The next files are copied in
    before the record forgets the rotation, so a node reading in between finds the new key
    either way."""
    rot = read_rotations(paths.rotation)
    done: list[Kind] = []
    if rot.key is not None and not rot.key.overlapping(now):
        atomic_write(paths.key, paths.next_key.read_bytes(), mode=0o600, like_existing=True)
        done.append("key")
    if rot.tls is not None and not rot.tls.overlapping(now):
        atomic_write(
            paths.cert_key, paths.next_cert_key.read_bytes(), mode=0o600, like_existing=True
        )
        atomic_write(paths.cert, paths.next_cert.read_bytes(), mode=0o644, like_existing=True)
        done.append("tls")
    if not done:
        return ()
    write_rotations(
        paths.rotation,
        Rotations(
            key=None if "key" in done else rot.key,
            tls=None if "tls" in done else rot.tls,
        ),
    )
    if "key" in done:
        paths.next_key.unlink(missing_ok=True)
    if "tls" in done:
        paths.next_cert.unlink(missing_ok=True)
        paths.next_cert_key.unlink(missing_ok=True)
    return tuple(done)


def _under_way(kind: Kind, rotation: Rotation, now: float) -> ConfigError:
    what = "key" if kind == "key" else "certificate"
    command = "rotate" if kind == "key" else "renew-tls"
    if not rotation.active(now):
        return ConfigError(
            f"a {what} rotation is under way: the new {what} comes into force at "
            f"{expiry(rotation.activate_at)}; `ncb-connector keys {command} --activate` brings "
            "it into force now, once every peer shows it pinned"
        )
    return ConfigError(
        f"a {what} rotation is under way: the new {what} is in force already, and the old "
        f"one retires at {expiry(rotation.not_after)}; rotate again after that"
    )


def _recorded(
    settings: Settings, kind: Kind, *, now: float, activate: bool
) -> tuple[Started | None, tuple[Kind, ...]]:
    """With `activate`, bring the waiting rotation into force now; otherwise None (no rotation
    of `kind` under way: one may start). What is over is tidied — only when the command goes
    ahead: a refused one deletes no key — and said in the second value."""
    paths = KeyPaths.of(settings)
    rot = read_rotations(paths.rotation)
    current = rot.key if kind == "key" else rot.tls
    if current is not None and not current.overlapping(now):
        current = None  # over: tidied before a new one starts
    if current is None:
        if activate:
            raise ConfigError(
                f"no {'key' if kind == 'key' else 'certificate'} rotation waits to come into "
                f"force; `ncb-connector keys {'rotate' if kind == 'key' else 'renew-tls'}` "
                "starts one"
            )
        return None, tidy(paths, now)
    if not activate or current.active(now):
        raise _under_way(kind, current, now)
    tidied = tidy(paths, now)  # the other kind's rotation, if it is over
    rot = read_rotations(paths.rotation)
    overlap = current.not_after - current.activate_at
    at = int(now)
    signer = Signer(in_force(paths, now).signing)
    statement = _statement(
        settings,
        kind,
        signer,
        old=current.old,
        new=current.new,
        paths=paths,
        activate_at=now,
        not_after=now + overlap,
        now=now,
    )
    moved = current.model_copy(
        update={"activate_at": at, "not_after": at + overlap, "statement": statement}
    )
    write_rotations(
        paths.rotation,
        rot.model_copy(update={"key" if kind == "key" else "tls": moved}),
    )
    return Started(kind=kind, rotation=moved, tidied=tidied, activated=True), tidied


def _statement(
    settings: Settings,
    kind: Kind,
    signer: Signer,
    *,
    old: str,
    new: str,
    paths: KeyPaths,
    activate_at: float,
    not_after: float,
    now: float,
) -> str:
    if kind == "key":
        return sign_rotation(
            signer,
            node=settings.node,
            replaces=old,
            new_key=read_signing_key(paths.next_key).public,
            activate_at=activate_at,
            not_after=not_after,
            now=now,
        )
    return sign_rotation(
        signer,
        node=settings.node,
        replaces=old,
        new_tls_fingerprint=new,
        activate_at=activate_at,
        not_after=not_after,
        now=now,
    )


def rotate_key(settings: Settings, *, now: float, activate: bool = False) -> Started:
    """Make the next signing key and publish it, with a statement the current key signs;
    the node signs with it from `keys.activate_after_s` on (or now, with `activate`, for a
    rotation already published), and publishes the old one until `keys.overlap_s` after."""
    done, tidied = _recorded(settings, "key", now=now, activate=activate)
    if done is not None:
        return done
    paths = KeyPaths.of(settings)
    ring = in_force(paths, now)
    fresh = SigningKey.generate()
    paths.next_key.unlink(missing_ok=True)  # one a failed command left, never published
    write_signing_key(paths.next_key, fresh)
    activate_at = int(now + settings.keys.activate_after_s)
    not_after = int(activate_at + settings.keys.overlap_s)
    old = ring.signing.public.kid
    statement = _statement(
        settings,
        "key",
        Signer(ring.signing),
        old=old,
        new=fresh.public.kid,
        paths=paths,
        activate_at=activate_at,
        not_after=not_after,
        now=now,
    )
    rotation = Rotation(
        old=old,
        new=fresh.public.kid,
        activate_at=activate_at,
        not_after=not_after,
        statement=statement,
    )
    write_rotations(paths.rotation, ring.rotations.model_copy(update={"key": rotation}))
    return Started(kind="key", rotation=rotation, tidied=tidied)


def _hosts(cert: Certificate) -> list[str]:
    """The names and addresses the certificate in force is made out to: the next one is too."""
    parsed = x509.load_pem_x509_certificate(cert.path.read_bytes())
    try:
        alt = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names = [str(a) for a in alt.get_values_for_type(x509.IPAddress)]
    return sorted({*alt.get_values_for_type(x509.DNSName), *names})


def renew_tls(
    settings: Settings, *, now: float, activate: bool = False, days: int | None = None
) -> Started:
    """Make the next TLS key and self-signed certificate (for the same names) and publish
    its fingerprint, with a statement the node's signing key signs; the node presents it
    from `keys.activate_after_s` on, and peers accept the old one until `keys.overlap_s`
    after."""
    done, tidied = _recorded(settings, "tls", now=now, activate=activate)
    if done is not None:
        return done
    paths = KeyPaths.of(settings)
    ring = in_force(paths, now)
    cert_pem, key_pem = make_tls_certificate(
        settings.node, _hosts(ring.certificate), days=days or settings.keys.certificate_days
    )
    for leftover in (paths.next_cert, paths.next_cert_key):
        leftover.unlink(missing_ok=True)
    write_private(paths.next_cert_key, key_pem)
    atomic_write(paths.next_cert, cert_pem, mode=0o644)
    fresh = Certificate.read(paths.next_cert, paths.next_cert_key)
    activate_at = int(now + settings.keys.activate_after_s)
    not_after = int(activate_at + settings.keys.overlap_s)
    old = ring.certificate.fingerprint
    statement = _statement(
        settings,
        "tls",
        Signer(ring.signing),
        old=old,
        new=fresh.fingerprint,
        paths=paths,
        activate_at=activate_at,
        not_after=not_after,
        now=now,
    )
    rotation = Rotation(
        old=old,
        new=fresh.fingerprint,
        activate_at=activate_at,
        not_after=not_after,
        statement=statement,
    )
    write_rotations(paths.rotation, ring.rotations.model_copy(update={"tls": rotation}))
    return Started(kind="tls", rotation=rotation, tidied=tidied)


def keyring_now(settings: Settings, *, now: float) -> InForce:
    """What a node with these settings holds in force at `now` (for `keys show`)."""
    return in_force(KeyPaths.of(settings), now)
