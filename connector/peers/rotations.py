"""A peer's rotation statements checked against what we pin for it, and the pins they change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pydantic import ValidationError

from connector.crypto.jws import parse_compact
from connector.errors import ConnectorError
from connector.peers.trust import Peer, PinnedFingerprint, PinnedKey
from connector.protocol import RotationClaims, RotationStatement, open_rotation


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """A statement that did not verify against our pins: never acted on."""

    token: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reviewed:
    """What a peer's published statements change: the peer as pinned after them, the
    statements that pinned something new, and those refused."""

    peer: Peer
    accepted: tuple[RotationStatement, ...]
    refused: tuple[Refused, ...]


def _pinned(peer: Peer, *, kind: str, old: str, new: str, not_after: float) -> bool:
    """The change a statement names is pinned already: its new key (certificate) is, and the
    old one retires no later than the statement says (`keys rotate --activate` brings both
    forward, and re-signs the statement)."""
    if kind == "key":
        if peer.key_by_kid(new) is None:
            return False
        was = peer.key_by_kid(old)
        until = None if was is None else was.not_after
    else:
        if new != peer.tls_fingerprint and all(r.fingerprint != new for r in peer.retiring_tls):
            return False
        until = next((r.not_after for r in peer.retiring_tls if r.fingerprint == old), None)
        if until is None and old == peer.tls_fingerprint:
            return False
    return until is None or until.timestamp() <= not_after


def applied(peer: Peer, statement: RotationStatement) -> bool:
    """Nothing in the statement is new to `peer`'s pins."""
    new = statement.new_key.kid if statement.new_key is not None else statement.new_tls_fingerprint
    assert new is not None
    return _pinned(
        peer, kind=statement.kind, old=statement.old, new=new, not_after=statement.not_after
    )


def _pinned_already(peer: Peer, token: str) -> bool:
    """What an unverified statement names is pinned already (so whether it still verifies
    no longer matters: the key that signed it may have retired since)."""
    try:
        claims = RotationClaims.model_validate_json(parse_compact(token.encode("ascii")).payload)
    except (ConnectorError, ValidationError, UnicodeEncodeError):
        return False
    new = claims.tls_fingerprint if claims.kind == "tls" else (claims.jwk or {}).get("kid")
    if not isinstance(new, str):
        return False
    return _pinned(peer, kind=claims.kind, old=claims.replaces, new=new, not_after=claims.exp)


def apply_statement(peer: Peer, statement: RotationStatement) -> Peer:
    """Pin what the statement names beside what it replaces, which keeps being accepted
    until its not_after (never later than a not_after it had)."""
    retire = datetime.fromtimestamp(statement.not_after, UTC)
    if statement.new_key is not None:
        keys = [PinnedKey(key=statement.new_key)]
        for k in peer.keys:
            if k.key.kid == statement.new_key.kid:
                continue
            if k.key.kid == statement.old:
                until = retire if k.not_after is None else min(k.not_after, retire)
                k = PinnedKey(key=k.key, not_after=until)
            keys.append(k)
        return replace(peer, keys=tuple(keys))
    assert statement.new_tls_fingerprint is not None
    retiring = [
        r
        for r in peer.retiring_tls
        if r.fingerprint not in (statement.old, statement.new_tls_fingerprint)
    ]
    if statement.old == peer.tls_fingerprint or any(
        r.fingerprint == statement.old for r in peer.retiring_tls
    ):
        until = retire
        for r in peer.retiring_tls:
            if r.fingerprint == statement.old:
                until = min(until, r.not_after)
        retiring.insert(0, PinnedFingerprint(fingerprint=statement.old, not_after=until))
    return replace(
        peer, tls_fingerprint=statement.new_tls_fingerprint, retiring_tls=tuple(retiring)
    )


def review(peer: Peer, tokens: Sequence[str], *, now: float) -> Reviewed:
    """Each statement verified with a key pinned for `peer` and valid now; those that pin
    something new applied in order; one whose change is pinned already is skipped."""
    when = datetime.fromtimestamp(now, UTC)
    accepted: list[RotationStatement] = []
    refused: list[Refused] = []
    for token in tokens:
        if _pinned_already(peer, token):
            continue
        keys = [k.key for k in peer.keys if k.valid_at(when)]
        try:
            statement = open_rotation(token, keys=keys, node=peer.id, now=now)
        except ConnectorError as exc:
            refused.append(Refused(token=token, reason=exc.detail))
            continue
        if applied(peer, statement):
            continue
        if statement.kind == "tls" and statement.old not in peer.tls_fingerprints(when):
            refused.append(
                Refused(token=token, reason="it replaces a certificate we do not pin for the peer")
            )
            continue
        peer = apply_statement(peer, statement)
        accepted.append(statement)
    return Reviewed(peer=peer, accepted=tuple(accepted), refused=tuple(refused))
