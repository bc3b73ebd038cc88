"""The node's config file (`connector.yaml`) parsed into frozen, validated settings."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from connector.errors import ConfigError
from connector.settings.yamlfile import load_yaml_model
from connector.storage.urls import backend
from connector.vocabulary import Category

DEFAULT_CONFIG_PATH = Path("/etc/ncb-connector/connector.yaml")
CONFIG_ENV = "NCB_CONNECTOR_CONFIG"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Listener(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)]
    # Connections open at once, in all and from one remote address (IPv6: its /64); one
    # beyond is closed as soon as it is accepted. Unset: 2048 and 64 on the peer listener,
    # 512 and 512 on the local one (connector/server/connections.py says why).
    max_connections: Annotated[int, Field(ge=1, le=65_536)] | None = None
    max_connections_per_address: Annotated[int, Field(ge=1, le=65_536)] | None = None


class Timeouts(_Model):
    """How long a connection to either listener may take over each step before it is closed."""

    tls_handshake_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    # A request's line and headers: from the connection's start, or the request's first byte.
    header_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    # A request's body once its headers are in; and a response, to be taken by the client.
    body_s: Annotated[float, Field(gt=0, le=300)] = 20.0
    # An idle connection between two requests. Peers keep theirs for 60 s: stay above that.
    keepalive_s: Annotated[float, Field(gt=0, le=3600)] = 75.0


class Listeners(_Model):
    peer: Listener
    local: Listener
    # The operator console (docs/console.md); absent: no console. Served with the node's TLS
    # certificate whenever its host is not a loopback address.
    console: Listener | None = None
    timeouts: Timeouts = Timeouts()


class Tls(_Model):
    cert: Path
    key: Path


class Databases(_Model):
    # sqlite:///FILE (relative to the config directory) or postgresql://USER@HOST/DB; the
    # password, if any, is better left to ~/.pgpass or PGPASSWORD than written here.
    records: str = "sqlite:///records.db"
    enquiries: str = "sqlite:///enquiries.db"
    # Group commit of the enquiry log: how long the first row waits for others to join its
    # commit, and how many rows make a commit go at once.
    commit_delay_ms: Annotated[float, Field(ge=0, le=50)] = 2.0
    commit_max_rows: Annotated[int, Field(ge=1, le=10_000)] = 256

    @field_validator("records", "enquiries")
    @classmethod
    def _known_database(cls, value: str) -> str:
        try:
            backend(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        except Exception:  # sqlalchemy's ArgumentError: not a URL at all
            raise ValueError(
                f"{value!r} is not a database URL: use sqlite:///FILE or postgresql://USER@HOST/DB"
            ) from None
        return value


class Logging(_Model):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Outgoing(_Model):
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    query_lifetime: Annotated[int, Field(ge=10, le=120)] = 60


class _ChannelBase(_Model):
    # A channel may also (or only) get a periodic summary: "daily 07:00", "hourly",
    # "weekly mon 07:00", or a five-field crontab such as "0 7 * * 1-5" (UTC).
    digest: str | None = None
    digest_only: bool = False


class WebhookChannel(_ChannelBase):
    type: Literal["webhook"]
    url: Annotated[str, StringConstraints(pattern=r"^https?://")]
    tls_fingerprint: str | None = None  # pin the receiver's certificate (SHA-256), no CA
    insecure: bool = False  # plain http:// (tests, labs)
    timeout: Annotated[float, Field(gt=0, le=120)] = 10.0


class EmailChannel(_ChannelBase):
    type: Literal["email"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    # Never the password itself in this file: a file readable by the service, or the name
    # of a systemd credential (LoadCredential=…; read from $CREDENTIALS_DIRECTORY).
    password_file: Path | None = None
    password_credential: str | None = None
    sender: str
    to: Annotated[list[str], Field(min_length=1)]
    timeout: Annotated[float, Field(gt=0, le=300)] = 30.0


class LogChannel(_ChannelBase):
    type: Literal["log"]


Channel = Annotated[WebhookChannel | EmailChannel | LogChannel, Field(discriminator="type")]


class Notifications(_Model):
    channels: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")], Channel
    ] = Field(default_factory=dict)
    # Delivery is retried with exponential backoff and jitter, from retry_initial_s up to
    # retry_max_s between attempts, until the notice is max_age_hours old: then it is dead.
    retry_initial_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    retry_max_s: Annotated[float, Field(gt=0, le=86400)] = 900.0
    max_age_hours: Annotated[float, Field(gt=0, le=24 * 90)] = 72.0
    poll_interval_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    # Deliveries in flight at once on each channel: a slow receiver holds up only its own.
    per_channel: Annotated[int, Field(ge=1, le=1024)] = 64


class Witness(_Model):
    """The enquiry log's checkpoints kept off this host by its peers (docs/protocol.md §13):
    a log cut short or rewritten with its chain recomputed no longer matches them."""

    # Send the log's head, signed, to every peer in peers.yaml this often when it has moved.
    # Rows newer than the last checkpoint a peer holds are unwitnessed: this is that window.
    send: bool = True
    interval_s: Annotated[float, Field(ge=5, le=86_400)] = 60.0


class Approvals(_Model):
    """Releases that wait for an operator (docs/policies.md `release: approval`)."""

    # How often this node expires approvals past their deadline and sends reminders.
    check_interval_s: Annotated[float, Field(ge=1, le=3_600)] = 10.0
    # How often, as a querier, it asks a peer for a release still pending (protocol §15.2);
    # the peer's `retry_after` may make it wait longer.
    poll_interval_s: Annotated[float, Field(ge=1, le=3_600)] = 15.0
    # An agency's release stream (`GET /local/v1/checks/{id}/stream`, local-api.md): a
    # heartbeat this often while nothing happens, and closed after this long at most (the
    # agency asks again), so no connection is held for an approval's 48 hours.
    stream_heartbeat_s: Annotated[float, Field(ge=1, le=300)] = 15.0
    stream_max_s: Annotated[float, Field(ge=1, le=86_400)] = 3_600.0
    # Agency id → a notification channel (a webhook the agency receives, usually): told
    # when a release its check waited for has come (docs/local-api.md).
    agency_channels: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")], str
    ] = Field(default_factory=dict)


class Retention(_Model):
    """The enquiry log's oldest rows moved into signed archive files on a schedule
    (`enquiries archive`, docs/operations.md "Retention and archives")."""

    # Rows older than this many days are archived; 0: never (the log keeps every row).
    archive_after_days: Annotated[int, Field(ge=0, le=36_500)] = 0
    # Where the archive files go; relative: in the state directory, beside the log.
    dir: Path = Path("archive")
    interval_s: Annotated[float, Field(ge=60, le=30 * 86_400)] = 86_400.0


class Keys(_Model):
    """How a rotation of the signing key or TLS certificate (`keys rotate`, `keys renew-tls`)
    proceeds: published first, in force after `activate_after_s`, the old one accepted by
    peers for `overlap_s` more. Peers pick a rotation up at their health check (every 30 s
    by default): the delay covers many of those, and a peer that was down for a while."""

    activate_after_s: Annotated[float, Field(ge=0, le=90 * 86_400)] = 3600.0
    overlap_s: Annotated[float, Field(ge=0, le=365 * 86_400)] = 7 * 86_400.0
    certificate_days: Annotated[int, Field(ge=1, le=3650)] = 825


class Readiness(_Model):
    """What /readyz checks beyond the policy: each check on a schedule, its result cached."""

    # Free space under which the node reports itself not ready (the directories of the
    # state, and of SQLite databases): a log that cannot grow cannot answer.
    min_free_mb: Annotated[int, Field(ge=0, le=10_000_000)] = 100
    interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0


class Federation(_Model):
    """Agencies asking peers through this node (the local API), and watching the peers."""

    # An agency's check returns when every peer has answered or this much time has passed;
    # each peer also gets at most `outgoing.timeout`. A request may ask for less or more.
    deadline_ms: Annotated[int, Field(ge=50, le=30_000)] = 1500
    # Relative paths below are in the state directory: beside the enquiry log's SQLite file
    # (the config directory when the log is not SQLite).
    agencies_file: Path = Path("agencies.json")
    health_file: Path = Path("peer-health.json")
    health_interval_s: Annotated[float, Field(gt=0, le=86_400)] = 30.0
    key_expiry_warning_days: Annotated[int, Field(ge=0, le=365)] = 14
    # A peer failing this many queries in a row is skipped for a cooldown that doubles (up to
    # 60 s) while probes keep failing.
    breaker_threshold: Annotated[int, Field(ge=1, le=1000)] = 3
    breaker_cooldown_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    # The local listener answers a Host that is an IP address, `localhost`, or one of these
    # names; any other name is a browser led there by DNS rebinding.
    local_hosts: tuple[Annotated[str, Field(min_length=1, max_length=253)], ...] = ()
    # An address whose agency tokens fail this often within the window is refused (429)
    # until the window moves on, valid token or not.
    auth_failures: Annotated[int, Field(ge=1, le=100_000)] = 10
    auth_failure_window_s: Annotated[int, Field(ge=1, le=86_400)] = 60


def is_loopback(host: str) -> bool:
    """`localhost`, or an address of this host's loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Console(_Model):
    """The operator console's accounts and sessions (docs/console.md)."""

    # Relative: in the state directory. Written by `ncb-connector users`, re-read by the
    # running node when it changes.
    users_file: Path = Path("console-users.json")
    # A session unused this long is gone: the next request asks for the password again.
    idle_timeout_s: Annotated[float, Field(ge=60, le=86_400)] = 900.0
    # Failed logins within the window, per account and per address, after which logins are
    # refused until the window moves on (right password or not).
    login_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    login_window_s: Annotated[int, Field(ge=1, le=86_400)] = 300
    # The console answers a Host that is an IP address, `localhost`, or one of these names
    # (the name operators browse to, behind a proxy or not); any other is a browser led
    # there by DNS rebinding.
    hosts: tuple[Annotated[str, Field(min_length=1, max_length=253)], ...] = ()
    # TLS on listen.console with the node's certificate. Unset: TLS unless the console
    # listens on a loopback address; false is refused for any other address.
    tls: bool | None = None


class Discovery(_Model):
    """Opt-in LAN discovery (mDNS / DNS-SD): announce this node, notice others, trust none."""

    mdns: bool = False
    # Addresses to announce and browse on; empty: every interface.
    interfaces: list[str] = Field(default_factory=list)
    discovered_file: Path = Path("discovered-peers.json")


DEFAULT_HIT_THRESHOLD = 0.85
"""Where a ranked candidate (a person found by name) becomes a hit; see docs/records.md and
docs/benchmarks.md for what it costs in missed persons and false hits."""
DEFAULT_FINGERPRINT_THRESHOLD = 40
"""The bozorth3 score of a fingerprint hit by default: NBIS's guide for a true match, and the
lowest that separated every genuine from every impostor pair of minutiae extracted from
images (bench.fingerprint_images); synthetic minutiae sets alone would choose 6, their
impostors scoring far lower than real extractions do (docs/benchmarks.md)."""


RefChecks = Literal["disclosed", "any"]


class DnaMatching(_Model):
    # Full designated loci (both alleles given, amelogenin aside) that must agree before a
    # profile is a hit: Prüm's 6, or more. Never fewer: the index finds every match only
    # from 6 agreeing loci on (docs/records.md).
    min_loci: Annotated[int, Field(ge=6, le=32)] = 6
    # Whether a profile with exactly one differing allele is a hit (a Prüm near match).
    allow_near_match: bool = True


class FingerprintMatching(_Model):
    # The bozorth3 score from which a fingerprint candidate is a hit (docs/records.md: why
    # 40, and why a node should set it from its own prints).
    threshold: Annotated[int, Field(ge=1, le=1000)] = DEFAULT_FINGERPRINT_THRESHOLD


class AfisLink(_Model):
    # The NCB's own AFIS, asked for every fingerprint check instead of this node's prints
    # (the HTTP contract: docs/records.md §Fingerprints). Its answer must come within the
    # peer's deadline: keep `timeout` below federation.deadline_ms.
    url: Annotated[str, StringConstraints(pattern=r"^https?://")]
    tls_fingerprint: str | None = None  # pin its certificate (SHA-256), no CA
    insecure: bool = False  # plain http:// (tests, labs)
    timeout: Annotated[float, Field(gt=0, le=30)] = 1.0

    @model_validator(mode="after")
    def _transport(self) -> AfisLink:
        https = self.url.lower().startswith("https://")
        if not https and not self.insecure:
            raise ValueError("a plain http:// url needs insecure: true (tests, labs); use https://")
        if self.tls_fingerprint is not None:
            if not https:
                raise ValueError("tls_fingerprint needs an https:// url")
            if not re.fullmatch(r"(?:[0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}", self.tls_fingerprint):
                raise ValueError(
                    "tls_fingerprint: a SHA-256 fingerprint (64 hex digits, colons allowed)"
                )
        return self


class FingerprintSources(_Model):
    # None: fingerprint checks are answered from this node's own prints.
    afis: AfisLink | None = None


class Matching(_Model):
    # Per category: the score from which a candidate of a ranked search (a person by name)
    # is a hit. Below it the candidate is not reported at any level.
    hit_threshold: dict[Category, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    # A check naming a record by its reference (a follow-up of a hit) is answered only when
    # this node gave that peer the reference ("disclosed"), or always ("any": national
    # references are public in your country, e.g. printed on published notices).
    ref_checks: RefChecks = "disclosed"
    # DNA profiles: the Prüm matching thresholds (docs/records.md).
    dna: DnaMatching = DnaMatching()
    # Fingerprints: the bozorth3 score a candidate must reach (docs/records.md).
    fingerprints: FingerprintMatching = FingerprintMatching()

    def threshold(self, category: Category) -> float:
        return self.hit_threshold.get(category, DEFAULT_HIT_THRESHOLD)


class Settings(_Model):
    """Validated settings; relative paths are resolved against the config file's directory."""

    node: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,8})?$")]
    key_file: Path
    tls: Tls
    listen: Listeners
    public_url: str | None = None
    databases: Databases = Databases()
    policy_dir: Path = Path("policies")
    peers_file: Path = Path("peers.yaml")
    # Live links to national databases (docs/records.md); no file, no links.
    sources_file: Path = Path("sources.yaml")
    policy_reload_interval: Annotated[float, Field(ge=0, le=3600)] = 5.0
    logging: Logging = Logging()
    outgoing: Outgoing = Outgoing()
    notifications: Notifications = Notifications()
    federation: Federation = Federation()
    discovery: Discovery = Discovery()
    matching: Matching = Matching()
    fingerprints: FingerprintSources = FingerprintSources()
    witness: Witness = Witness()
    approvals: Approvals = Approvals()
    readiness: Readiness = Readiness()
    retention: Retention = Retention()
    keys: Keys = Keys()
    # Processes serving the peer API on its one port (SO_REUSEPORT): 1, today's single
    # process; `auto`, one per core this process may run on (docs/architecture.md §6).
    workers: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = 1

    console: Console = Console()
    base_dir: Path = Path(".")

    @model_validator(mode="after")
    def _known_agency_channels(self) -> Settings:
        unknown = sorted(
            f"{agency}: {channel}"
            for agency, channel in self.approvals.agency_channels.items()
            if channel not in self.notifications.channels
        )
        if unknown:
            raise ValueError(
                "approvals.agency_channels names channels notifications.channels does not "
                f"define ({', '.join(unknown)})"
            )
        return self

    @model_validator(mode="after")
    def _distinct_listeners(self) -> Settings:
        peer, local = self.listen.peer, self.listen.local
        if peer.port != 0 and (peer.host, peer.port) == (local.host, local.port):
            raise ValueError("listen.peer and listen.local must not share an address and port")
        console = self.listen.console
        if console is not None and self.console.tls is False and not is_loopback(console.host):
            raise ValueError(
                f"listen.console.host {console.host} is not a loopback address: the console "
                "needs TLS there (remove console.tls: false)"
            )
        if console is not None and console.port != 0:
            for name, other in (("peer", peer), ("local", local)):
                if (console.host, console.port) == (other.host, other.port):
                    raise ValueError(
                        f"listen.console and listen.{name} must not share an address and port"
                    )
        return self

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.base_dir / p

    @property
    def worker_count(self) -> int:
        """How many processes serve the peer API: `workers`, `auto` read as the cores
        this process may run on."""
        if self.workers != "auto":
            return self.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):  # not Linux, or a sandbox that refuses the call
            return os.cpu_count() or 1

    @property
    def console_tls(self) -> bool:
        """Whether the console is served over TLS: passwords and session cookies never
        cross a network in the clear."""
        console = self.listen.console
        if self.console.tls is not None:
            return self.console.tls
        return console is not None and not is_loopback(console.host)

    def database_url(self, url: str) -> str:
        """SQLite URLs with a relative path are taken relative to the config directory."""
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
            return prefix + str(self.base_dir / url[len(prefix) :])
        return url

    def state_path(self, p: Path) -> Path:
        """A file the node writes: relative paths go beside the enquiry log's SQLite file,
        the one directory the service may write under systemd."""
        if p.is_absolute():
            return p
        prefix = "sqlite:///"
        url = self.enquiries_url
        if url.startswith(prefix) and url != prefix:
            return Path(url[len(prefix) :]).parent / p
        return self.base_dir / p

    @property
    def records_url(self) -> str:
        return self.database_url(self.databases.records)

    @property
    def enquiries_url(self) -> str:
        return self.database_url(self.databases.enquiries)

    @property
    def peer_url(self) -> str:
        if self.public_url:
            return self.public_url
        host = self.listen.peer.host
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.listen.peer.port}"


def load_settings(path: Path) -> Settings:
    """Read and validate connector.yaml; every problem becomes one ConfigError naming the
    file, line and key, so an admin never meets a traceback or a silently ignored key."""
    if not path.exists():
        # The usual first mistake: say each way a command finds its config, and how to make one.
        raise ConfigError(
            f"cannot read {path}: no such file. Give --config PATH, or set {CONFIG_ENV}=PATH "
            f"(default {DEFAULT_CONFIG_PATH}); `ncb-connector init --node CC --dir DIR` makes "
            "a new node's config",
            file=str(path),
        )
    return load_yaml_model(path, Settings, extra={"base_dir": path.resolve().parent})
