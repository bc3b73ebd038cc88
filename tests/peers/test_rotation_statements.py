"""Rotation statements: accepted only when signed by a key we pin for that node, and current."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import structlog

from connector.crypto.jws import Signer, SigningKey
from connector.errors import InvalidClaims, StaleToken, UnknownKey
from connector.peers.breaker import Breakers
from connector.peers.client import PinnedCertificates
from connector.peers.health import HealthMonitor
from connector.peers.rotations import review
from connector.peers.trust import (
    Peer,
    PinnedFingerprint,
    PinnedKey,
    TrustStore,
    load_trust_store,
    save_trust_store,
)
from connector.protocol import IdentityClaims, open_rotation, sign_rotation

NOW = 1_790_000_000.0
OLD_FP = ":".join(["AA"] * 32)
NEW_FP = ":".join(["BB"] * 32)


def de(old: SigningKey) -> Peer:
    return Peer(
        id="DE",
        url="https://127.0.0.1:9",
        keys=(PinnedKey(key=old.public),),
        tls_fingerprint=OLD_FP,
    )


def key_statement(signer: SigningKey, new: SigningKey, *, node: str = "DE", exp: float) -> str:
    return sign_rotation(
        Signer(signer),
        node=node,
        replaces=signer.public.kid,
        new_key=new.public,
        activate_at=NOW + 60,
        not_after=exp,
        now=NOW,
    )


def test_a_key_statement_signed_by_the_pinned_key_pins_the_next_key_beside_it() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    token = key_statement(old, new, exp=NOW + 600)
    reviewed = review(de(old), [token], now=NOW)
    assert [s.new_key for s in reviewed.accepted] == [new.public]
    assert reviewed.refused == ()
    keys = reviewed.peer.keys
    assert [k.key.kid for k in keys] == [new.public.kid, old.public.kid]
    assert keys[0].not_after is None
    assert keys[1].not_after == datetime.fromtimestamp(NOW + 600, UTC)
    # Seen again at the next health check: nothing more to do, nothing refused.
    again = review(reviewed.peer, [token], now=NOW + 30)
    assert again.accepted == ()
    assert again.refused == ()
    assert again.peer == reviewed.peer


def test_a_statement_signed_by_a_key_we_do_not_pin_is_refused() -> None:
    old, stranger, new = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    token = key_statement(stranger, new, exp=NOW + 600)
    with pytest.raises(UnknownKey):
        open_rotation(token, keys=[old.public], node="DE", now=NOW)
    reviewed = review(de(old), [token], now=NOW)
    assert reviewed.accepted == ()
    assert "not pinned" in reviewed.refused[0].reason
    assert reviewed.peer == de(old)


def test_a_statement_for_another_node_is_refused() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    token = key_statement(old, new, node="GB", exp=NOW + 600)
    with pytest.raises(InvalidClaims, match="GB's, not DE's"):
        open_rotation(token, keys=[old.public], node="DE", now=NOW)
    assert review(de(old), [token], now=NOW).accepted == ()


def test_an_expired_or_replayed_statement_is_refused() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    token = key_statement(old, new, exp=NOW + 600)
    # Replayed after the rotation it announced is over: what it replaced has retired.
    with pytest.raises(StaleToken, match="expired"):
        open_rotation(token, keys=[old.public], node="DE", now=NOW + 601 + 30)
    assert review(de(old), [token], now=NOW + 700).accepted == ()


def test_a_key_statement_must_be_signed_by_the_key_it_replaces() -> None:
    old, other, new = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    token = sign_rotation(
        Signer(other),
        node="DE",
        replaces=old.public.kid,
        new_key=new.public,
        activate_at=NOW,
        not_after=NOW + 600,
        now=NOW,
    )
    with pytest.raises(InvalidClaims, match="signed by the key it replaces"):
        open_rotation(token, keys=[old.public, other.public], node="DE", now=NOW)


def test_a_certificate_statement_pins_the_next_fingerprint_and_retires_the_old() -> None:
    old = SigningKey.generate()
    token = sign_rotation(
        Signer(old),
        node="DE",
        replaces=OLD_FP,
        new_tls_fingerprint=NEW_FP,
        activate_at=NOW + 60,
        not_after=NOW + 600,
        now=NOW,
    )
    peer = review(de(old), [token], now=NOW).peer
    assert peer.tls_fingerprint == NEW_FP
    assert peer.retiring_tls == (
        PinnedFingerprint(fingerprint=OLD_FP, not_after=datetime.fromtimestamp(NOW + 600, UTC)),
    )
    assert peer.tls_fingerprints(datetime.fromtimestamp(NOW + 600, UTC)) == (NEW_FP, OLD_FP)
    assert peer.tls_fingerprints(datetime.fromtimestamp(NOW + 601, UTC)) == (NEW_FP,)
    # The client's pin follows the same dates at each handshake.
    clock = [NOW]
    pins = PinnedCertificates(peer, lambda: clock[0])
    assert pins == PinnedCertificates(peer, lambda: clock[0])  # one connection pool
    assert pins != PinnedCertificates(de(old), lambda: clock[0])  # never shared across pins


def test_retiring_fingerprints_survive_the_trust_file(tmp_path: Path) -> None:
    old = SigningKey.generate()
    until = datetime.fromtimestamp(NOW + 600, UTC)
    peer = Peer(
        id="DE",
        url="https://127.0.0.1:9",
        keys=(PinnedKey(key=old.public),),
        tls_fingerprint=NEW_FP,
        retiring_tls=(PinnedFingerprint(fingerprint=OLD_FP, not_after=until),),
    )
    path = tmp_path / "peers.yaml"
    save_trust_store(path, TrustStore.of([peer]))
    assert load_trust_store(path).get("DE") == peer
    assert "retiring_tls_fingerprints" in path.read_text()


async def test_the_health_job_refuses_and_logs_a_statement_it_cannot_verify(
    tmp_path: Path,
) -> None:
    old, stranger, new = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    repinned: list[object] = []
    async with aiohttp.ClientSession() as session:
        monitor = HealthMonitor(
            session=session,
            trust=lambda: TrustStore.of([de(old)]),
            breakers=Breakers(),
            path=tmp_path / "health.json",
            node="FR",
            clock=lambda: NOW,
            monotonic=lambda: 0.0,
            timeout=1.0,
            warn_days=14,
            repin=repinned.append,
        )
    claims = IdentityClaims(
        iss="DE",
        iat=int(NOW),
        exp=int(NOW) + 300,
        protocol=1,
        keys=[stranger.public.jwk(), new.public.jwk()],
        rotations=[key_statement(stranger, new, exp=NOW + 600)],
    )
    with structlog.testing.capture_logs() as events:
        assert monitor._rotations(de(old), claims) == de(old)
        monitor._rotations(de(old), claims)  # the same statement: logged once
    refused = [e for e in events if e["event"] == "peer_rotation_refused"]
    assert len(refused) == 1
    assert refused[0]["log_level"] == "error"
    assert refused[0]["peer"] == "DE"
    assert repinned == []
