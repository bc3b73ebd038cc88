"""Asking a peer: send a signed query over pinned TLS and verify the signed answer."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog
from yarl import URL

from connector.crypto.jws import PublicKey, Signer
from connector.crypto.keyfiles import der_fingerprint
from connector.errors import BadAnswer, PeerRejected, PeerTimeout, PeerUnreachable
from connector.peers.trust import Peer, fingerprint_bytes
from connector.protocol import (
    JOSE_MEDIA_TYPE,
    MAX_ANSWER_BYTES,
    AnswerClaims,
    EncodedChecks,
    IdentityClaims,
    Query,
    open_answer_pinned,
    open_identity,
    sign_query,
)

log = structlog.get_logger(__name__)


def transport_failure(exc: BaseException, *, other: str = "the peer") -> str:
    """Why a peer (or `other`: a webhook's receiver) could not be reached, in an operator's
    words: never an object's repr (an aiohttp connection error's text names its `ssl=`
    argument, a Fingerprint object)."""
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        return "the TLS certificate does not match the pin"
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer within the timeout"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLError) or (
        isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ssl.SSLError)
    ):
        return "the TLS handshake failed"
    os_error = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused (nothing listens at that address and port)"
    if isinstance(os_error, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(exc, aiohttp.ServerDisconnectedError) or isinstance(
        os_error, ConnectionResetError | BrokenPipeError
    ):
        return f"{other} closed the connection"
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror[0].lower() + os_error.strerror[1:]
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer broke off"
    return "the connection failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One query sent and its verified answer, as the outbound enquiry log needs it."""

    peer: str
    query: Query
    query_token: bytes
    answer: AnswerClaims
    answer_token: bytes
    elapsed: float


class Pin(aiohttp.Fingerprint):
    """aiohttp's certificate pin, equal to any other pin of the same certificate: the pin is
    part of aiohttp's connection key, and its own Fingerprint compares by identity, so each
    health check (which makes its own) opened a connection of its own beside the pooled ones
    queries use, instead of keeping those warm."""

    def __eq__(self, other: object) -> bool:
        return type(other) is Pin and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)


class PinnedCertificates(aiohttp.Fingerprint):
    """aiohttp's certificate pin, for several certificates: the peer's current one, and those
    it renewed, each until its not_after (read at each handshake, so a certificate retires on
    time even for a route built before). Checked once per new connection, never per request."""

    def __init__(self, peer: Peer, clock: Callable[[], float]) -> None:
        assert peer.tls_fingerprint is not None
        super().__init__(fingerprint_bytes(peer.tls_fingerprint))
        self._until: dict[bytes, float] = {self.fingerprint: float("inf")}
        for old in peer.retiring_tls:
            self._until.setdefault(fingerprint_bytes(old.fingerprint), old.not_after.timestamp())
        self._clock = clock
        # Part of aiohttp's connection key: the same pins share a pool, other pins never do.
        self._key = frozenset(self._until.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PinnedCertificates) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)

    def check(self, transport: asyncio.Transport) -> None:
        if not transport.get_extra_info("sslcontext"):
            return
        der = transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        got = hashlib.sha256(der).digest()
        if self._clock() > self._until.get(got, float("-inf")):
            host, port, *_ = transport.get_extra_info("peername")
            raise aiohttp.ServerFingerprintMismatch(self.fingerprint, got, host, port)


def transport_for(peer: Peer, clock: Callable[[], float] = time.time) -> aiohttp.Fingerprint | bool:
    if peer.tls_fingerprint:
        if not peer.retiring_tls:
            return Pin(fingerprint_bytes(peer.tls_fingerprint))
        return PinnedCertificates(peer, clock)
    if peer.insecure and peer.url.startswith("http://"):
        return False
    raise PeerUnreachable(f"peer {peer.id} has no TLS fingerprint pinned")


def peer_session(*, limit_per_host: int = 16) -> aiohttp.ClientSession:
    """One session for every peer: connections are kept alive (60 s, under aiohttp's server
    default of 75 s) and reused; no global cap, since a fan-out to 196 peers needs 196."""
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=limit_per_host, keepalive_timeout=60, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(connector=connector)


_QUERY_HEADERS = {"Content-Type": JOSE_MEDIA_TYPE, "Accept": JOSE_MEDIA_TYPE}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Route:
    """Where and how a query to one peer goes, derived once per trust-store entry."""

    peer: Peer
    url: URL
    ssl: aiohttp.Fingerprint | bool


class PeerClient:
    """Queries peers over one shared ClientSession (connections are reused)."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        signer: Signer,
        node: str,
        clock: Callable[[], float],
        timeout: float = 5.0,
    ) -> None:
        self.session = session
        self.signer = signer
        self.node = node
        self.clock = clock
        self.timeout = timeout
        self._routes: dict[str, _Route] = {}

    def sign(self, query: Query, checks: EncodedChecks | None = None) -> bytes:
        return sign_query(query, self.signer, checks)

    async def ask(self, peer: Peer, query: Query, *, timeout: float | None = None) -> Exchange:
        return await self.send(peer, query, self.sign(query), timeout=timeout)

    def _route(self, peer: Peer) -> _Route:
        route = self._routes.get(peer.id)
        # A reloaded trust store holds new Peer objects: the route follows the entry in force.
        if route is None or route.peer is not peer:
            route = _Route(
                peer=peer, url=URL(f"{peer.url}/v1/query"), ssl=transport_for(peer, self.clock)
            )
            if peer.insecure and peer.id not in self._routes:
                log.warning(
                    "peer_insecure",
                    peer=peer.id,
                    url=peer.url,
                    detail="plain HTTP: for tests and demos only",
                )
            self._routes[peer.id] = route
        return route

    async def send(
        self, peer: Peer, query: Query, token: bytes, *, timeout: float | None = None
    ) -> Exchange:
        keys = self.pinned_keys(peer)
        if not keys:
            raise BadAnswer(f"no valid key is pinned for {peer.id}")
        route = self._route(peer)
        body, elapsed = await self._post(peer, route.url, route.ssl, token, timeout)
        answer = open_answer_pinned(
            body,
            keys=keys,
            peer=peer.id,
            me=self.node,
            query_token=token,
            query=query,
            now=self.clock(),
        )
        return Exchange(
            peer=peer.id,
            query=query,
            query_token=token,
            answer=answer,
            answer_token=body,
            elapsed=elapsed,
        )

    async def post(
        self, peer: Peer, path: str, token: bytes, *, timeout: float | None = None
    ) -> bytes:
        """Any other signed request of the peer API (§3): the peer's reply, still to be
        opened with the keys pinned for it."""
        route = self._route(peer)
        # Under the peer's URL as given (it may carry a path prefix), as /v1/query is.
        body, _ = await self._post(peer, URL(f"{peer.url}{path}"), route.ssl, token, timeout)
        return body

    def pinned_keys(self, peer: Peer) -> list[PublicKey]:
        """The keys pinned for the peer and valid now: any may sign its reply (rotation)."""
        when = datetime.fromtimestamp(self.clock(), UTC)
        return [k.key for k in peer.keys if k.valid_at(when)]

    async def _post(
        self,
        peer: Peer,
        url: URL,
        ssl: aiohttp.Fingerprint | bool,
        token: bytes,
        timeout: float | None,
    ) -> tuple[bytes, float]:
        """POST a signed token over the pinned connection: (the 200 body, seconds taken);
        every other outcome is a PeerError in an operator's words."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with self.session.post(
                url,
                data=token,
                ssl=ssl,
                headers=_QUERY_HEADERS,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            ) as resp:
                if (resp.content_length or 0) > MAX_ANSWER_BYTES:
                    raise BadAnswer(f"{peer.id}: the answer is larger than {MAX_ANSWER_BYTES}")
                body = await resp.content.read(MAX_ANSWER_BYTES + 1)
                status, ctype = resp.status, resp.content_type
        except TimeoutError as exc:
            raise PeerTimeout(f"{peer.id}: {transport_failure(exc)}") from exc
        except aiohttp.ClientConnectorError as exc:
            raise PeerUnreachable(
                f"{peer.id}: cannot connect to {peer.url}: {transport_failure(exc)}"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise PeerUnreachable(f"{peer.id}: {transport_failure(exc)}") from exc
        elapsed = loop.time() - started
        if status != 200:
            problem = _problem(body) if ctype == "application/problem+json" else {}
            raise PeerRejected(
                f"{peer.id} answered {status}: "
                f"{problem.get('detail') or problem.get('title') or ctype}",
                peer_status=status,
                peer_problem=problem,
            )
        return body, elapsed


def _problem(body: bytes) -> dict[str, object]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchedIdentity:
    claims: IdentityClaims
    key: PublicKey
    tls_fingerprint: str | None


async def peer_certificate_fingerprint(url: str, *, timeout: float = 5.0) -> str | None:
    """The SHA-256 fingerprint of the certificate a peer presents, unverified (for TOFU)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.hostname is None:
        return None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(parts.hostname, parts.port or 443, ssl=ctx)
    except (OSError, TimeoutError) as exc:
        raise PeerUnreachable(f"{url}: {transport_failure(exc)}") from exc
    try:
        obj = writer.get_extra_info("ssl_object")
        der = obj.getpeercert(binary_form=True) if obj is not None else None
    finally:
        writer.close()
    if not der:
        raise PeerUnreachable(f"{url} presented no certificate")
    return der_fingerprint(der)


async def fetch_identity(
    session: aiohttp.ClientSession, url: str, *, pin: str | None = None, timeout: float = 5.0
) -> FetchedIdentity:
    """Read a peer's `/v1/identity` over TLS pinned to `pin`, or, without one, to the
    certificate the peer presents now, whose fingerprint is returned for an admin to compare
    out of band before trusting it."""
    fp = pin or await peer_certificate_fingerprint(url, timeout=timeout)
    tls: aiohttp.Fingerprint | bool = aiohttp.Fingerprint(fingerprint_bytes(fp)) if fp else False
    try:
        async with session.get(
            f"{url.rstrip('/')}/v1/identity", ssl=tls, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise PeerRejected(f"{url} answered {resp.status}")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise PeerUnreachable(f"{url}: {transport_failure(exc)}") from exc
    claims, key = open_identity(body, now=time.time())
    return FetchedIdentity(claims=claims, key=key, tls_fingerprint=fp)
