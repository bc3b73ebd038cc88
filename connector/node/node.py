"""The node: settings, identity, the policy and peers in force; its databases opened."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import structlog
from aiohttp import web

from connector.crypto.jws import Signer
from connector.enquiries.continuity import (
    STATE_FILE,
    Admin,
    KeptLog,
    accept,
    refusal,
    what_is_wrong,
)
from connector.enquiries.log import EnquiryLog
from connector.errors import ConfigError
from connector.metrics import Metrics
from connector.node.keyring import KeyPaths, Keyring
from connector.node.live import LiveState
from connector.node.maintenance import MAINTENANCE_FILE, MaintenanceSwitch
from connector.notify.digest import channel_triggers
from connector.outbound.desk import Desk
from connector.outbound.exchange import Exchanges
from connector.outbound.fanout import FanOut
from connector.peers.breaker import Breakers
from connector.peers.client import PeerClient, peer_session
from connector.records.store import RecordStore
from connector.settings.config import Settings
from connector.storage.urls import redacted, sqlite_file
from connector.trail.entry import TRAIL_FILE, Action, Actor
from connector.trail.file import record

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """What every part of a node is built from: settings, identity, live policy and peers."""

    settings: Settings
    signer: Signer
    keyring: Keyring
    live: LiveState
    clock: Callable[[], float]
    # The node's own registry: its counters move only while it serves (a command's Node
    # counts nothing anyone scrapes).
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def tls_fingerprint(self) -> str:
        """The certificate the peer listener presents now."""
        return self.keyring.current.certificate.fingerprint

    def own_expiries(self) -> dict[str, float | None]:
        """When the node's own key and certificate in force stop being valid (None: no end
        set; a signing key has one only while a rotation retires it), for metrics."""
        ring = self.keyring.current
        return {
            "signing_key_expires": ring.keys[0].not_after,
            "certificate_expires": ring.certificate.not_after,
        }

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> Node:
        keyring = Keyring(KeyPaths.of(settings), clock=clock)
        signer = Signer(keyring.current.signing)
        metrics = Metrics()
        live = LiveState(
            policy_dir=settings.path(settings.policy_dir),
            peers_file=settings.path(settings.peers_file),
            channels=frozenset(settings.notifications.channels),
            maintenance=MaintenanceSwitch(settings.state_path(MAINTENANCE_FILE), clock=clock),
            metrics=metrics,
        )
        return cls(
            settings=settings,
            signer=signer,
            keyring=keyring,
            live=live,
            clock=clock,
            metrics=metrics,
        )

    def load_live(self) -> None:
        """At start there is no older version to keep: a broken file stops the node."""
        channel_triggers({n: c.digest for n, c in self.settings.notifications.channels.items()})
        report = self.live.reload()
        if report.problems:
            raise ConfigError(
                "; ".join(f"{k}: {v}" for k, v in report.problems.items()), problems=report.problems
            )

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        cert = self.keyring.current.certificate
        ctx.load_cert_chain(cert.path, cert.key)
        return ctx

    def open_records(self, *, serving: bool = False) -> RecordStore:
        return RecordStore.open(self.settings.records_url, serving=serving)

    def open_enquiry_log(self, *, serving: bool = False) -> EnquiryLog:
        db = self.settings.databases
        return EnquiryLog.open(
            self.settings.enquiries_url,
            commit_delay=db.commit_delay_ms / 1000,
            max_batch=db.commit_max_rows,
            serving=serving,
            metrics=self.metrics if serving else None,
        )

    @contextlib.asynccontextmanager
    async def serving_records(self) -> AsyncIterator[RecordStore]:
        """The record store a running node searches, for as long as it runs."""
        store = self.open_records(serving=True)
        try:
            outdated = store.keys_outdated()
            if outdated:
                log.warning(
                    "search_keys_outdated",
                    categories=[c.value for c in outdated],
                    hint="run `ncb-connector db upgrade` (or `records reindex`)",
                )
            yield store
        finally:
            await store.aclose()

    def kept_log(self) -> KeptLog:
        """What the node keeps of its log outside it: the last checkpoint, the `--new-log`s."""
        return KeptLog(self.settings.state_path(STATE_FILE), node=self.settings.node)

    @contextlib.asynccontextmanager
    async def serving_enquiry_log(
        self, *, new_log: Admin | None = None
    ) -> AsyncIterator[EnquiryLog]:
        """The enquiry log a running node writes, both directions in one group commit; only
        the log this node wrote (it holds the kept checkpoint), unless `new_log` says an
        admin accepts another."""
        url = self.settings.enquiries_url
        kept_log = self.kept_log()
        kept = kept_log.read()
        file = sqlite_file(url)
        missing = file is not None and not file.exists()
        if kept is not None and kept.seq > 0 and missing and new_log is None:
            # Refused before opening: opening would leave an empty log in its place.
            raise refusal(kept, "is missing", where=redacted(url), state_file=kept_log.path)
        enquiry_log = self.open_enquiry_log(serving=True)
        try:
            found = what_is_wrong(kept, enquiry_log, file_missing=missing)
            if found is not None and kept is not None:
                if new_log is None:
                    raise refusal(kept, found, where=redacted(url), state_file=kept_log.path)
                now = self.clock()
                accept(kept_log, kept, found, enquiry_log, admin=new_log, now=now)
                # The admin's decision, in the admin audit trail too: a log given up is a
                # change to what the node can prove, as a peer removed is to whom it trusts.
                record(
                    self.settings.state_path(TRAIL_FILE),
                    actor=Actor(kind="os", name=new_log.login, sudo_user=new_log.sudo_user),
                    action=Action.ENQUIRY_LOG_REPLACED,
                    target=self.settings.node,
                    details={"found": found, "kept_seq": kept.seq, "kept_hash": kept.hash},
                    now=now,
                )
            elif new_log is not None:
                log.warning("enquiry_log_new_not_needed", login=new_log.login)
            yield enquiry_log
        finally:
            await enquiry_log.aclose()

    def fanout(
        self,
        session: aiohttp.ClientSession,
        enquiry_log: EnquiryLog,
        breakers: Breakers,
        *,
        metrics: Metrics | None = None,
    ) -> FanOut:
        """The node's way of asking peers, over `session`, logged in `enquiry_log`; what it
        asks counted in `metrics` (the serving node's)."""
        s = self.settings
        monotonic = asyncio.get_running_loop().time
        client = PeerClient(
            session=session,
            signer=self.signer,
            node=s.node,
            clock=self.clock,
            timeout=s.outgoing.timeout,
        )
        exchanges = Exchanges(
            node=s.node,
            client=client,
            enquiry_log=enquiry_log,
            clock=self.clock,
            monotonic=monotonic,
            query_lifetime=s.outgoing.query_lifetime,
            release_poll_s=s.approvals.poll_interval_s,
        )
        return FanOut(
            exchanges=exchanges,
            breakers=breakers,
            monotonic=monotonic,
            peer_timeout=s.outgoing.timeout,
            metrics=metrics,
        )

    @contextlib.asynccontextmanager
    async def desk(self) -> AsyncIterator[Desk]:
        """Asking peers outside the serving node: a session, log handle and breakers of the
        desk's own, the same policy, keys and log as the node's."""
        enquiry_log = self.open_enquiry_log()
        try:
            async with peer_session() as session:
                fanout = self.fanout(session, enquiry_log, Breakers())
                try:
                    yield Desk(
                        node=self.settings.node,
                        fanout=fanout,
                        policy=self.live.current_policy,
                        trust=self.live.current_trust,
                        open_records=self.open_records,
                        deadline_ms=self.settings.federation.deadline_ms,
                    )
                finally:
                    await fanout.drain()  # a query sent gets its row before the log closes
        finally:
            enquiry_log.close()


# The node and the two databases the service opens once, as both listeners' apps hold them.
NODE = web.AppKey("node", Node)
RECORDS = web.AppKey("records", RecordStore)
ENQUIRY_LOG = web.AppKey("enquiry_log", EnquiryLog)
