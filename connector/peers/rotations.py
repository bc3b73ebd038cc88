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


def applied(peer: Peer, statement: RotationStatement) -> bool:
    """The statement's new key or certificate is pinned already: nothing to do."""
    if statement.new_key is not None:
        return peer.key_by_kid(statement.new_key.kid) is not None
    return statement.new_tls_fingerprint == peer.tls_fingerprint or any(
        r.fingerprint == statement.new_tls_fingerprint for r in peer.retiring_tls
    )


def _pinned_already(peer: Peer, token: str) -> bool:
    """What an unverified statement names is pinned already (so whether it still verifies
    no longer matters: the key that signed it may have retired since)."""
    try:
        claims = RotationClaims.model_validate_json(parse_compact(token.encode("ascii")).payload)
    except (ConnectorError, ValidationError, UnicodeEncodeError):
        return False
    if claims.kind == "tls":
        return claims.tls_fingerprint is not None and (
            claims.tls_fingerprint == peer.tls_fingerprint
            or any(r.fingerprint == claims.tls_fingerprint for r in peer.retiring_tls)
        )
    kid = (claims.jwk or {}).get("kid")
    return isinstance(kid, str) and peer.key_by_kid(kid) is not None


def apply_statement(peer: Peer, statement: RotationStatement) -> Peer:
    """Pin what the statement names beside what it replaces, which keeps being accepted
    until its not_after (never later than a not_after it had)."""
    retire = datetime.fromtimestamp(statement.not_after, UTC)
    if statement.new_key is not None:
        keys = [PinnedKey(key=statement.new_key)]
        for k in peer.keys:
            if k.key.kid == statement.old:
                until = retire if k.not_after is None else min(k.not_after, retire)
                k = PinnedKey(key=k.key, not_after=until)
            keys.append(k)
        return replace(peer, keys=tuple(keys))
    assert statement.new_tls_fingerprint is not None
    retiring = [r for r in peer.retiring_tls if r.fingerprint != statement.old]
    if peer.tls_fingerprint is not None and peer.tls_fingerprint != statement.new_tls_fingerprint:
        until = retire
        for r in peer.retiring_tls:
            if r.fingerprint == peer.tls_fingerprint:
                until = min(until, r.not_after)
        retiring.insert(0, PinnedFingerprint(fingerprint=peer.tls_fingerprint, not_after=until))
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
