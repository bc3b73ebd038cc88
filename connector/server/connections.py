"""Connections to a listener: how many at once, from one address, and how long each step of
one may take.

aiohttp reads a request head for as long as the client cares to send it, one byte a second
if it likes, keeps a connection that never sends anything, and lets `accept()` run the
process out of file descriptors. So every listener is served through a `GuardedSite`:

- each accepted TCP connection takes a slot of its listener (`max_connections`) and of its
  remote address (`max_per_address`) until it closes. One over the address's cap is closed
  at once (a reset, no handshake, one rate-limited `connection_refused` line); one over the
  listener's cap first evicts the oldest connection that has not yet sent a request head
  (then the oldest idle one), and is refused only when every slot is busy with a request;
- each connection is always in one phase, and every phase but handling has a deadline: the
  TLS handshake, a request's head (from the connection's start or the request's first
  byte), its body (once the head is in), sending the response, and idling between requests
  (keep-alive). Past it the connection is closed. One timer per listener sweeps the
  deadlines: a phase's connections are kept in the order they entered it, which for a fixed
  timeout is the order of their deadlines.

TLS is started on the connection only once it has its slot (`loop.start_tls`), so an
address over its cap costs no handshake, and a connection waiting for its handshake counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import resource
import socket
import ssl
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from connector.errors import ConnectorError
from connector.server.problems import REJECTIONS, parser_error, problem_response
from connector.server.rejectlog import RateLimitedLog, RejectionLog
from connector.settings.config import Listener, Timeouts

log = structlog.get_logger(__name__)

# Defaults sized for some 200 peers. A peer opens at most 16 connections to this node
# (connector/peers/client.py) and keeps them 60 s; 64 per address leaves room for two nodes
# behind one address, 2048 for 128 peers at their busiest at once. Agencies usually reach
# the local listener from this host or one gateway: one address, so no cap of its own.
PEER_MAX_CONNECTIONS, PEER_MAX_PER_ADDRESS = 2048, 64
LOCAL_MAX_CONNECTIONS, LOCAL_MAX_PER_ADDRESS = 512, 512
PEER_BACKLOG, LOCAL_BACKLOG = 1024, 128
MIN_CAP = 16

SWEEP_S = 0.25
"""How often a listener's deadlines are checked: the timeouts are this much late at most."""

# Phases. Handling has no deadline: the handlers bound their own work (the peer API answers
# within milliseconds; a local check ends by its deadline).
HANDSHAKE, HEAD, BODY, HANDLING, SENDING, IDLE, CLOSED = (
    "tls_handshake",
    "head",
    "body",
    "handling",
    "sending",
    "idle",
    "closed",
)
EVICTABLE = (HEAD, HANDSHAKE, IDLE)
"""Which connections give way to a new one when the listener is full, first to last."""

_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset, keeps no state


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    max_per_address: int
    tls_handshake_s: float
    header_s: float
    body_s: float
    keepalive_s: float
    backlog: int

    def timeouts(self) -> dict[str, float]:
        """Each phase's timeout; handling has none."""
        return {
            HANDSHAKE: self.tls_handshake_s,
            HEAD: self.header_s,
            BODY: self.body_s,
            SENDING: self.body_s,
            IDLE: self.keepalive_s,
        }


def listener_limits(
    peer: Listener, local: Listener, timeouts: Timeouts
) -> tuple[ConnectionLimits, ConnectionLimits]:
    """Both listeners' limits from the settings, made to fit the process's file limit.

    Both caps, with the connections `accept()` may take in one go before any is refused
    (each listener's backlog), must fit in half of RLIMIT_NOFILE; the other half is for the
    databases and the connections to peers (up to 16 each). The soft limit is raised to
    what is needed if the hard limit allows (the systemd unit sets LimitNOFILE= and forbids
    setrlimit); if it still is too low, caps and backlogs are lowered to fit, and said so."""

    def limits(listener: Listener, cap: int, per_address: int, backlog: int) -> ConnectionLimits:
        total = listener.max_connections or cap
        return ConnectionLimits(
            max_connections=total,
            max_per_address=min(total, listener.max_connections_per_address or per_address),
            tls_handshake_s=timeouts.tls_handshake_s,
            header_s=timeouts.header_s,
            body_s=timeouts.body_s,
            keepalive_s=timeouts.keepalive_s,
            backlog=backlog,
        )

    p = limits(peer, PEER_MAX_CONNECTIONS, PEER_MAX_PER_ADDRESS, PEER_BACKLOG)
    q = limits(local, LOCAL_MAX_CONNECTIONS, LOCAL_MAX_PER_ADDRESS, LOCAL_BACKLOG)
    wanted = p.max_connections + p.backlog + q.max_connections + q.backlog
    limit = raise_file_limit(2 * wanted)
    if wanted <= limit // 2:
        return p, q
    share = (limit // 2) / wanted

    def lowered(x: ConnectionLimits) -> ConnectionLimits:
        total = max(MIN_CAP, int(x.max_connections * share))
        return replace(
            x,
            max_connections=total,
            max_per_address=min(total, x.max_per_address),
            backlog=max(MIN_CAP, int(x.backlog * share)),
        )

    p2, q2 = lowered(p), lowered(q)
    log.warning(
        "connection_caps_lowered",
        open_files_limit=limit,
        wanted=2 * wanted,
        peer_max_connections=p2.max_connections,
        local_max_connections=q2.max_connections,
        hint="raise LimitNOFILE= (systemd) or ulimit -n",
    )
    return p2, q2


def raise_file_limit(wanted: int) -> int:
    """The soft RLIMIT_NOFILE, first raised towards `wanted` as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(OSError, ValueError):  # EPERM under the unit's seccomp filter
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


class ConnectionEvents:
    """What a listener logs about its connections, each line under a budget (rejectlog)."""

    def __init__(self, listener: str) -> None:
        clock = time.monotonic
        self.listener = listener
        self.refused = RateLimitedLog(
            "connection_refused", clock=clock, per_key=5, total=50, count_field="refused"
        )
        self.closed = RateLimitedLog(
            "connection_closed", clock=clock, per_key=5, total=50, count_field="closed"
        )
        self.handshake_failed = RateLimitedLog(
            "tls_handshake_failed",
            clock=clock,
            per_key=5,
            total=50,
            count_field="failed",
            level="info",
        )
        self.http_error = RateLimitedLog(
            "http_error", clock=clock, per_key=5, total=50, count_field="errors", level="error"
        )

    def tick(self) -> None:
        for events in (self.refused, self.closed, self.handshake_failed, self.http_error):
            events.tick()

    def flush(self) -> None:
        for events in (self.refused, self.closed, self.handshake_failed, self.http_error):
            events.flush()


class Slot:
    """One admitted connection's place in its listener's counts and deadlines."""

    __slots__ = ("guard", "phase", "released", "remote", "transport")

    def __init__(self, guard: ConnectionGuard, remote: str, transport: asyncio.Transport):
        self.guard = guard
        self.remote = remote
        self.transport = transport  # the TCP transport, under TLS if any
        self.phase = CLOSED
        self.released = False

    def enter(self, phase: str) -> None:
        if self.released or phase == self.phase:
            return
        guard = self.guard
        waiting = guard._phases.get(self.phase)
        if waiting is not None:
            del waiting[self]
        self.phase = phase
        timeout = guard._timeouts.get(phase)
        if timeout is not None:
            guard._phases[phase][self] = guard.loop.time() + timeout

    def release(self) -> None:
        """The connection is gone (or going): its slots are free. Idempotent."""
        if self.released:
            return
        guard = self.guard
        waiting = guard._phases.get(self.phase)
        if waiting is not None:
            del waiting[self]
        self.phase = CLOSED
        self.released = True
        guard.open -= 1
        left = guard._by_address[self.remote] - 1
        if left:
            guard._by_address[self.remote] = left
        else:
            del guard._by_address[self.remote]


class ConnectionGuard:
    """A listener's slots and deadlines."""

    def __init__(self, name: str, limits: ConnectionLimits) -> None:
        self.name = name
        self.limits = limits
        self.events = ConnectionEvents(name)
        # What the HTTP parser refuses is a request_rejected like the app's refusals, under
        # the app's budget when it has one (GuardedSite.start).
        self.rejections = RejectionLog(clock=time.monotonic)
        self.loop = asyncio.get_running_loop()
        self.open = 0
        self._by_address: dict[str, int] = {}
        self._timeouts = limits.timeouts()
        self._phases: dict[str, OrderedDict[Slot, float]] = {
            phase: OrderedDict() for phase in self._timeouts
        }
        self._timer: asyncio.TimerHandle | None = None
        self._accepting = False
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._accepting = True
        if self._timer is None:
            self._timer = self.loop.call_later(SWEEP_S, self._sweep)

    def stop_accepting(self) -> None:
        """The listener has stopped: handshakes under way are dropped; the connections that
        carry requests finish under their deadlines, and the sweeps end with the last one."""
        self._accepting = False
        for slot in list(self._phases[HANDSHAKE]):
            self._close(slot, None)
        self.events.flush()

    def admit(self, transport: asyncio.BaseTransport) -> Slot | None:
        """A slot for a connection just accepted, or None: then it is closed already."""
        assert isinstance(transport, asyncio.Transport)  # a TCP connection's
        peer = transport.get_extra_info("peername")
        remote = address_key(str(peer[0])) if isinstance(peer, tuple) and peer else "-"
        reason = None
        if not self._accepting:
            reason = "stopping"
        elif self._by_address.get(remote, 0) >= self.limits.max_per_address:
            reason = "per_address"
        elif self.open >= self.limits.max_connections and not self._evict():
            reason = "total"
        if reason is not None:
            _reset(transport)
            self.events.refused(
                remote,
                reason,
                listener=self.name,
                open=self.open,
                from_address=self._by_address.get(remote, 0),
            )
            return None
        self.open += 1
        self._by_address[remote] = self._by_address.get(remote, 0) + 1
        return Slot(self, remote, transport)

    def _evict(self) -> bool:
        for phase in EVICTABLE:
            waiting = self._phases[phase]
            if waiting:
                self._close(next(iter(waiting)), "evicted")
                return True
        return False

    def _close(self, slot: Slot, why: str | None) -> None:
        phase = slot.phase
        slot.release()
        if phase == IDLE and why is None:
            slot.transport.close()
            return
        _reset(slot.transport)
        if why is not None:
            self.events.closed(
                slot.remote,
                why if why != "timeout" else f"{phase}_timeout",
                listener=self.name,
                phase=phase,
            )

    def _sweep(self) -> None:
        now = self.loop.time()
        for phase, waiting in self._phases.items():
            expired = []
            for slot, deadline in waiting.items():
                if deadline > now:
                    break
                expired.append(slot)
            for slot in expired:
                # An idle connection's keep-alive ran out: ordinary, not worth a line.
                self._close(slot, None if phase == IDLE else "timeout")
        self.events.tick()
        if self._accepting or self.open:
            self._timer = self.loop.call_later(SWEEP_S, self._sweep)
        else:
            self._timer = None
            self.events.flush()


def address_key(address: str) -> str:
    """What one remote address is, for its cap: an IPv4 address, or the /64 an IPv6 one
    belongs to (one site's hosts get a /64 each, and any of its 2^64 addresses at will)."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


def _reset(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    transport.abort()


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler, telling its slot which phase the connection is in.

    A request's head is complete when aiohttp's parser has made a message of it; its body
    when that message's payload has reached its end; its response when finish_response
    returns. Requests may be pipelined: the connection is handling while any parsed request
    is not yet answered."""

    def __init__(
        self, manager: web.Server, *, guard: ConnectionGuard, slot: Slot | None, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._slot = slot
        self._made = False
        self._parsed = 0
        self._answered = 0
        self._sending = False
        self._body: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._slot is None:  # plain HTTP: admitted here; under TLS, before the handshake
            self._slot = self._guard.admit(transport)
            if self._slot is None:
                return
        self._made = True
        super().connection_made(transport)
        self._slot.enter(HEAD)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._slot is not None:
            self._slot.release()
        if self._made:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        slot = self._slot
        if slot is None:
            return
        if data and slot.phase == IDLE:
            slot.enter(HEAD)  # the next request's first byte: its head must follow in time
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._parsed += self._request_count - before
            stuck = self._body
            if self._messages:
                message, self._body = self._messages[-1]
                if isinstance(message, _ErrInfo) and stuck is not None and not stuck.is_eof():
                    # The parser gave up in the middle of this body (its chunks, its
                    # length). aiohttp's C parser leaves the body waiting for more, and its
                    # handler with it: the handler is told, and answers the refusal.
                    stuck.set_exception(web.RequestPayloadError(message.message))
        self._settle()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        self._sending = True
        self._settle()
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._sending = False
            self._answered += 1
            self._settle()

    def _settle(self) -> None:
        slot = self._slot
        if slot is None or slot.released:
            return
        body = self._body
        if self._sending:
            phase = SENDING
        elif body is not None and not body.is_eof():
            phase = BODY
        elif self._parsed > self._answered:
            phase = HANDLING
        elif slot.phase == HEAD:
            phase = HEAD  # between requests, the next one's head under way
        else:
            phase = IDLE
        slot.enter(phase)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """What aiohttp refuses before a handler runs (its parser: a bad request line, a
        smuggling attempt, an unknown Content-Encoding) or fails at outside every
        middleware: a problem document like any other refusal, and a `request_rejected`
        line (or `http_error` for a failure of ours), never plain text or a traceback."""
        if request.writer.output_size > 0:
            raise ConnectionError("the response has begun: no problem document can follow")
        remote = self._slot.remote if self._slot is not None else None
        error: ConnectorError
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
            error = ConnectorError("an internal error occurred")
        else:
            error = parser_error(exc, message)
            self._guard.rejections.rejected(
                remote=remote, path="-", status=error.status, code=error.code, detail=error.detail
            )
        response = problem_response(error, None)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own errors, one line each under a budget, never a traceback."""
        exc = kw.get("exc_info")
        if isinstance(exc, web.RequestPayloadError | HttpProcessingError):
            return  # a body aiohttp still read after its refusal was answered and logged
        message = str(args[0]) if args else "error"
        with contextlib.suppress(TypeError, ValueError):
            message = message % args[1:]
        remote = self._slot.remote if self._slot is not None else None
        self._guard.events.http_error(
            remote,
            type(exc).__name__ if isinstance(exc, BaseException) else "error",
            listener=self._guard.name,
            message=message,
            error=str(exc) if isinstance(exc, BaseException) else None,
        )


class _TlsAcceptor(asyncio.Protocol):
    """A TCP connection's protocol until its TLS handshake is done: takes the slot, then
    hands the connection to TLS and aiohttp."""

    __slots__ = ("_site", "_slot")

    def __init__(self, site: GuardedSite) -> None:
        self._site = site
        self._slot: Slot | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        site = self._site
        slot = site.guard.admit(transport)
        if slot is None:
            return
        self._slot = slot
        slot.transport.pause_reading()  # the ClientHello waits for start_tls
        slot.enter(HANDSHAKE)
        task = site.guard.loop.create_task(site._handshake(slot.transport, slot))
        site.guard.tasks.add(task)
        task.add_done_callback(site.guard.tasks.discard)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._slot is not None:
            self._slot.release()


class GuardedSite(web.BaseSite):
    """A TCP listener for an AppRunner, like web.TCPSite, under a ConnectionGuard."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        name: str,
        limits: ConnectionLimits,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=limits.backlog)
        # Several processes listening on one port (SO_REUSEPORT), the kernel spreading
        # connections among them: `workers:` in connector.yaml.
        self._reuse_port = reuse_port
        self._host = host
        self._port = port
        self._label = name
        self._limits = limits
        self.guard = ConnectionGuard(name, limits)

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        assert isinstance(self._runner, web.AppRunner)
        if REJECTIONS in self._runner.app:
            self.guard.rejections = self._runner.app[REJECTIONS]
        self.guard.start()
        factory = self._acceptor if self._ssl_context else self._plain
        self._server = await loop.create_server(
            factory,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_port=self._reuse_port or None,
        )

    async def stop(self) -> None:
        self.guard.stop_accepting()
        await super().stop()

    def _handler(self, slot: Slot | None) -> GuardedRequestHandler:
        server = self._runner.server
        assert server is not None
        return GuardedRequestHandler(
            server,
            guard=self.guard,
            slot=slot,
            loop=self.guard.loop,
            access_log=None,
            keepalive_timeout=self._limits.keepalive_s,
        )

    def _plain(self) -> asyncio.BaseProtocol:
        return self._handler(None)

    def _acceptor(self) -> asyncio.BaseProtocol:
        return _TlsAcceptor(self)

    async def _handshake(self, transport: asyncio.Transport, slot: Slot) -> None:
        assert self._ssl_context is not None
        handler = self._handler(slot)
        try:
            tls = await self.guard.loop.start_tls(
                transport,
                handler,
                self._ssl_context,
                server_side=True,
                # The sweep closes it first, with a line of its own; this is a backstop.
                ssl_handshake_timeout=self._limits.tls_handshake_s + 5,
            )
        except asyncio.CancelledError:
            slot.release()
            transport.abort()
            raise
        except Exception as exc:
            if not slot.released:
                slot.release()
                self.guard.events.handshake_failed(
                    slot.remote,
                    type(exc).__name__,
                    listener=self._label,
                    error=str(exc) or None,
                )
            transport.abort()
            return
        if slot.released or tls is None:  # closed just as the handshake completed
            slot.release()
            transport.abort()
            return
        handler.connection_made(tls)
