"""LAN discovery (opt-in): announce this node over mDNS, notice others, trust none of them."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import orjson
import structlog
from aiohttp import web
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from connector.peers.trust import TrustStore
from connector.protocol import PROTOCOL_VERSION
from connector.storage.files import atomic_write
from connector.vocabulary import is_node_id

log = structlog.get_logger(__name__)

SERVICE_TYPE = "_ncb-connector._tcp.local."
Standing = Literal["known", "key_mismatch", "unknown"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sighting:
    """A node announcing itself on the LAN: what it claims, not what we trust."""

    node: str
    kid: str
    protocol: str
    host: str
    port: int
    seen_at: float
    standing: Standing = "unknown"


def standing(trust: TrustStore, node: str, kid: str) -> Standing:
    """Known only when both the node id and the key thumbprint match peers.yaml."""
    peer = trust.get(node)
    if peer is None:
        return "unknown"
    return "known" if peer.key_by_kid(kid) is not None else "key_mismatch"


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def with_addresses(trust: TrustStore, seen: dict[str, Sighting]) -> TrustStore:
    """The trust store with the addresses discovery found for known peers: the scheme, keys
    and TLS pin stay as the admin pinned them; only host and port follow the LAN."""
    peers = []
    for peer in trust.peers.values():
        s = seen.get(peer.id)
        if s is not None and peer.key_by_kid(s.kid) is not None:
            peer = replace(peer, url=_url(peer.url.split("://", 1)[0], s.host, s.port))
        peers.append(peer)
    return TrustStore.of(peers)


class Discovered:
    """What the browser has seen, kept in memory for the fan-out and in a file for
    `peers discovered`."""

    def __init__(self, *, node: str, path: Path, clock: Callable[[], float]) -> None:
        self.node = node
        self.path = path
        self.clock = clock
        self.seen: dict[str, Sighting] = {}
        self.version = 0

    def see(self, sighting: Sighting, trust: TrustStore) -> Sighting:
        s = replace(sighting, standing=standing(trust, sighting.node, sighting.kid))
        before = self.seen.get(s.node)
        self.seen[s.node] = s
        if before is None or (before.host, before.port, before.kid) != (s.host, s.port, s.kid):
            self.version += 1
            peer = trust.get(s.node)
            if s.standing == "known" and peer is not None:
                log.info(
                    "peer_address_discovered",
                    peer=s.node,
                    host=s.host,
                    port=s.port,
                    pinned_url=peer.url,
                )
            elif s.standing == "key_mismatch":
                log.warning(
                    "discovered_key_mismatch",
                    peer=s.node,
                    kid=s.kid,
                    host=s.host,
                    detail="announces a key not pinned in peers.yaml; not used",
                )
            else:
                log.info(
                    "node_discovered",
                    node=s.node,
                    kid=s.kid,
                    host=s.host,
                    port=s.port,
                    detail="not trusted until an admin adds it",
                )
        self.save()
        return s

    def view(self, base: Callable[[], TrustStore]) -> Callable[[], TrustStore]:
        """`base` with discovered addresses applied, rebuilt only when either changes."""
        cache: list[Any] = [None, -1, None]

        def current() -> TrustStore:
            store = base()
            if cache[0] is not store or cache[1] != self.version:
                cache[:] = [store, self.version, with_addresses(store, self.seen)]
            result: TrustStore = cache[2]
            return result

        return current

    def save(self) -> None:
        doc = {
            "node": self.node,
            "written_at": self.clock(),
            "discovered": [asdict(s) for s in sorted(self.seen.values(), key=lambda s: s.node)],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def load_discovered(path: Path) -> list[Sighting]:
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return []
    return [Sighting(**s) for s in doc.get("discovered", [])]


def _announce_addresses(host: str, interfaces: list[str]) -> list[str]:
    if host not in ("0.0.0.0", "::", ""):
        return [host]
    if interfaces:
        return interfaces
    return [socket.gethostbyname(socket.gethostname())]


def sighting_from(info: AsyncServiceInfo, now: float) -> Sighting | None:
    """A sighting from a resolved service, or None when its TXT record is not ours."""
    props = {
        k.decode(errors="replace"): (v or b"").decode(errors="replace")
        for k, v in info.properties.items()
    }
    node, kid, proto = props.get("node", ""), props.get("kid", ""), props.get("proto", "")
    addresses = info.parsed_addresses()
    if not is_node_id(node) or not kid or not addresses or not info.port:
        return None
    return Sighting(
        node=node, kid=kid, protocol=proto, host=addresses[0], port=info.port, seen_at=now
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    """What this node tells the LAN about itself."""

    node: str
    kid: str
    host: str  # the peer listener's address; 0.0.0.0 or :: announce the interfaces'
    port: int  # the peer listener's port, once it listens
    interfaces: tuple[str, ...]  # where to announce and browse (empty: all)


def discovery_ctx(
    announcement: Announcement, discovered: Discovered, trust: Callable[[], TrustStore]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Announce, and browse for others, as long as the app runs; a sighting's standing is
    judged against `trust` when it is seen."""
    a = announcement
    interfaces = list(a.interfaces)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        v6 = any(":" in i for i in interfaces)
        aiozc = AsyncZeroconf(
            interfaces=interfaces or None,  # type: ignore[arg-type]
            ip_version=IPVersion.All if v6 else IPVersion.V4Only,
        )
        addresses = [
            ipaddress.ip_address(address).packed
            for address in _announce_addresses(a.host, interfaces)
        ]
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{a.node}.{SERVICE_TYPE}",
            addresses=addresses,
            port=a.port,
            properties={"node": a.node, "kid": a.kid, "proto": str(PROTOCOL_VERSION)},
            server=f"ncb-{a.node.lower()}.local.",
        )
        tasks: set[asyncio.Task[None]] = set()

        async def resolve(zc: Zeroconf, service_type: str, name: str) -> None:
            found = AsyncServiceInfo(service_type, name)
            if not await found.async_request(zc, 3000):
                return
            sighting = sighting_from(found, discovered.clock())
            if sighting is not None and sighting.node != a.node:
                discovered.see(sighting, trust())

        def on_change(
            zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
        ) -> None:
            if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
                task = asyncio.ensure_future(resolve(zeroconf, service_type, name))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        await (await aiozc.async_register_service(info))
        browser = AsyncServiceBrowser(aiozc.zeroconf, SERVICE_TYPE, handlers=[on_change])
        log.info(
            "discovery_started", service=info.name, port=info.port, interfaces=interfaces or "all"
        )
        yield
        await browser.async_cancel()
        for task in list(tasks):
            task.cancel()
        await aiozc.async_unregister_all_services()
        await aiozc.async_close()

    return ctx
