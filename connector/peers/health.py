"""Peer health: each peer's identity fetched on a schedule, its key and TLS pin re-checked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import structlog

from connector.errors import ConnectorError
from connector.peers.breaker import Breakers
from connector.peers.client import transport_failure, transport_for
from connector.peers.rotations import Reviewed, review
from connector.peers.trust import Peer, TrustStore
from connector.protocol import JOSE_MEDIA_TYPE, IdentityClaims, open_identity
from connector.storage.files import atomic_write

log = structlog.get_logger(__name__)

MAX_IDENTITY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerHealth:
    """The last health check of one peer, as `peers status` shows it."""

    peer: str
    url: str
    up: bool
    checked_at: float
    latency_ms: float | None = None
    key_ok: bool | None = None  # the identity is signed by a key we pin for this peer
    tls_ok: bool | None = None  # the certificate matched the pin (None: plain-HTTP peer)
    key_expires_at: float | None = None  # not_after of the pinned key in use, if any
    key_expiring: bool = False
    last_up_at: float | None = None
    breaker: str = "closed"
    error: str | None = None


def key_findings(
    peer: Peer, *, signing_kid: str, iss: str, tls_claim: str | None, now: float, warn_days: int
) -> tuple[bool, bool | None, float | None, bool, str | None]:
    """(key ok, TLS claim ok, key expiry, expiring soon, problem) from a verified identity."""
    when = datetime.fromtimestamp(now, UTC)
    pinned = peer.key_by_kid(signing_kid)
    problem = None
    key_ok = iss == peer.id and pinned is not None and pinned.valid_at(when)
    if iss != peer.id:
        problem = f"the identity names {iss}, not {peer.id}"
    elif pinned is None:
        problem = "the peer signs with a key we do not pin"
    elif not pinned.valid_at(when):
        problem = "the peer signs with a pinned key past its not_after"
    tls_ok: bool | None = None
    if peer.tls_fingerprint is not None:
        tls_ok = tls_claim is None or tls_claim in peer.tls_fingerprints(when)
        if not tls_ok and problem is None:
            problem = "the identity names another TLS certificate than the one pinned"
    expires = pinned.not_after.timestamp() if pinned and pinned.not_after else None
    # A key retiring after a rotation we accepted has its successor pinned: nothing to warn of.
    succeeded = pinned is not None and any(
        k is not pinned
        and k.valid_at(when)
        and (k.not_after is None or k.not_after.timestamp() > (expires or 0))
        for k in peer.keys
    )
    expiring = expires is not None and expires - now < warn_days * 86_400 and not succeeded
    return key_ok, tls_ok, expires, expiring, problem


async def check_peer(
    session: aiohttp.ClientSession,
    peer: Peer,
    *,
    now: float,
    timeout: float,
    warn_days: int,
    monotonic: Callable[[], float],
    on_identity: Callable[[Peer, IdentityClaims], Peer] | None = None,
) -> PeerHealth:
    """GET the peer's /v1/identity over the pinned transport and compare it with the pins
    (as `on_identity` leaves them: it may accept a rotation the identity announces)."""
    started = monotonic()
    try:
        async with session.get(
            f"{peer.url}/v1/identity",
            ssl=transport_for(peer, lambda: now),
            headers={"Accept": JOSE_MEDIA_TYPE},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            body = await resp.content.read(MAX_IDENTITY_BYTES)
            status = resp.status
    except ConnectorError as exc:
        return PeerHealth(peer=peer.id, url=peer.url, up=False, checked_at=now, error=exc.detail)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        mismatch = isinstance(exc, aiohttp.ServerFingerprintMismatch)
        return PeerHealth(
            peer=peer.id,
            url=peer.url,
            up=False,
            checked_at=now,
            tls_ok=False if mismatch else None,
            error=transport_failure(exc),
        )
    latency = round((monotonic() - started) * 1000, 1)
    if status != 200:
        return PeerHealth(
            peer=peer.id,
            url=peer.url,
            up=False,
            checked_at=now,
            latency_ms=latency,
            error=f"HTTP {status}",
        )
    try:
        claims, key = open_identity(body, now=now)
    except ConnectorError as exc:
        return PeerHealth(
            peer=peer.id,
            url=peer.url,
            up=False,
            checked_at=now,
            latency_ms=latency,
            key_ok=False,
            error=exc.detail,
        )
    if on_identity is not None:
        peer = on_identity(peer, claims)
    key_ok, tls_ok, expires, expiring, problem = key_findings(
        peer,
        signing_kid=key.kid,
        iss=claims.iss,
        tls_claim=claims.tls_fingerprint,
        now=now,
        warn_days=warn_days,
    )
    return PeerHealth(
        peer=peer.id,
        url=peer.url,
        up=bool(key_ok and tls_ok is not False),
        checked_at=now,
        latency_ms=latency,
        key_ok=key_ok,
        tls_ok=tls_ok,
        key_expires_at=expires,
        key_expiring=expiring,
        error=problem,
    )


# --- the state file, read by `peers status` in another process --------------------------------


def save_health(path: Path, rows: Sequence[PeerHealth], *, written_at: float, node: str) -> None:
    doc = {"node": node, "written_at": written_at, "peers": [asdict(r) for r in rows]}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def load_health(path: Path) -> tuple[float | None, list[PeerHealth]]:
    try:
        doc: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None, []
    fields = set(PeerHealth.__dataclass_fields__)
    rows = [PeerHealth(**{k: v for k, v in r.items() if k in fields}) for r in doc.get("peers", [])]
    return doc.get("written_at"), rows


class HealthMonitor:
    """Runs the checks (an APScheduler job), keeps up/down history, feeds the breakers: a
    peer found back up may be asked again at once instead of after its cooldown."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        trust: Callable[[], TrustStore],
        breakers: Breakers,
        path: Path,
        node: str,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        timeout: float,
        warn_days: int,
        repin: Callable[[Reviewed], None] | None = None,
        concurrency: int = 64,
    ) -> None:
        self.session = session
        self.trust = trust
        self.breakers = breakers
        self.path = path
        self.node = node
        self.clock = clock
        self.monotonic = monotonic
        self.timeout = timeout
        self.warn_days = warn_days
        self.repin = repin
        self._gate = asyncio.Semaphore(concurrency)
        self.last: dict[str, PeerHealth] = {}
        self._refused: set[str] = set()  # statements refused and logged once already

    def exchanged(self, peer: str, elapsed: float) -> None:
        """A verified answer from `peer`: the pinned key signed it over the pinned TLS. A
        peer the last check found down is shown up now, not at the next check."""
        before = self.last.get(peer)
        pinned = self.trust().get(peer)
        if before is None or before.up or pinned is None:
            return
        now = self.clock()
        row = replace(
            before,
            up=True,
            checked_at=now,
            latency_ms=round(elapsed * 1000, 1),
            key_ok=True,
            tls_ok=None if pinned.tls_fingerprint is None else True,
            last_up_at=now,
            breaker=self.breakers.state(peer, self.monotonic()),
            error=None,
        )
        self.last[peer] = row
        save_health(
            self.path,
            sorted(self.last.values(), key=lambda r: r.peer),
            written_at=now,
            node=self.node,
        )
        log.info("peer_up", peer=peer, url=row.url, latency_ms=row.latency_ms, seen="exchange")

    async def run_once(self) -> list[PeerHealth]:
        peers = sorted(self.trust().peers.values(), key=lambda p: p.id)
        rows = list(await asyncio.gather(*(self._one(p) for p in peers)))
        self.last = {r.peer: r for r in rows}
        save_health(self.path, rows, written_at=self.clock(), node=self.node)
        return rows

    def _rotations(self, peer: Peer, claims: IdentityClaims) -> Peer:
        """Accept what the peer's statements announce, signed by a key we pin for it; pin it
        (`repin`), log it; a statement that does not verify is refused and logged once."""
        if not claims.rotations or claims.iss != peer.id:
            return peer
        reviewed = review(peer, claims.rotations, now=self.clock())
        for refused in reviewed.refused:
            if refused.token not in self._refused:
                self._refused.add(refused.token)
                log.error("peer_rotation_refused", peer=peer.id, reason=refused.reason)
        if not reviewed.accepted:
            return peer
        assert self.repin is not None
        self.repin(reviewed)
        for st in reviewed.accepted:
            not_after = datetime.fromtimestamp(st.not_after, UTC).isoformat()
            if st.new_key is not None:
                log.info(
                    "peer_key_rotated",
                    peer=peer.id,
                    old=st.old,
                    new=st.new_key.kid,
                    not_after=not_after,
                    activate_at=st.activate_at,
                )
            else:
                log.info(
                    "peer_certificate_rotated",
                    peer=peer.id,
                    old=st.old,
                    new=st.new_tls_fingerprint,
                    not_after=not_after,
                    activate_at=st.activate_at,
                )
        return reviewed.peer

    async def _one(self, peer: Peer) -> PeerHealth:
        async with self._gate:
            row = await check_peer(
                self.session,
                peer,
                now=self.clock(),
                timeout=self.timeout,
                warn_days=self.warn_days,
                monotonic=self.monotonic,
                on_identity=self._rotations if self.repin is not None else None,
            )
        before = self.last.get(peer.id)
        if row.up:
            self.breakers.success(peer.id)
        else:
            self.breakers.failure(peer.id, self.monotonic())
        last_up = row.checked_at if row.up else (before.last_up_at if before else None)
        row = PeerHealth(
            **{
                **asdict(row),
                "last_up_at": last_up,
                "breaker": self.breakers.state(peer.id, self.monotonic()),
            }
        )
        if before is None or before.up != row.up:
            emit = log.info if row.up else log.warning
            emit(
                "peer_up" if row.up else "peer_down",
                peer=peer.id,
                url=peer.url,
                error=row.error,
                latency_ms=row.latency_ms,
            )
        if row.key_expiring and (before is None or not before.key_expiring):
            log.warning(
                "peer_key_expiring",
                peer=peer.id,
                not_after=datetime.fromtimestamp(row.key_expires_at or 0, UTC).isoformat(),
                days=self.warn_days,
            )
        return row
