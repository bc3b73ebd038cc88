"""What the console is given by the node it runs in: the state in force, the files it
changes, and the readers; the console itself builds none of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from connector.approvals.service import Approvals
from connector.console.accounts import AccountDirectory
from connector.console.reader import Reader
from connector.console.sessions import Sessions
from connector.inbound.ratelimit import RateLimiter
from connector.logs import RateLimitedLog
from connector.peers.trust import TrustStore
from connector.policy import Policy


@dataclass(frozen=True, slots=True, kw_only=True)
class Maintenance:
    """The maintenance switch, as `maintenance on|off|status` works it."""

    status: Callable[[], str | None]  # the reason shown, or None when off
    on: Callable[[str, str | None], None]  # (account, reason)
    off: Callable[[], bool]  # False: it was off


@dataclass(frozen=True, slots=True, kw_only=True)
class Console:
    node: str
    secure: bool  # served over TLS: cookies are Secure
    clock: Callable[[], float]
    monotonic: Callable[[], float]
    accounts: AccountDirectory
    sessions: Sessions
    failures: RateLimiter  # failed logins, per account and per address
    login_failures: int
    login_window_s: int
    # Refused logins (`console_login_refused`, its code the reason): anyone who reaches the
    # listener can cause them, so the journal gets a budget per address.
    refusals: RateLimitedLog
    reader: Reader
    policy: Callable[[], Policy]
    trust: Callable[[], TrustStore]
    problems: Callable[[], Mapping[str, str]]  # the last reload's, by file
    health_file: Path
    peers_file: Path
    agencies_file: Path
    trail_file: Path
    maintenance: Maintenance
    rejections: Callable[[], int]  # requests refused before an enquiry row, since start
    certificate_expires: Callable[[], float]
    # The node's approvals (the peer app's service, on the log it serves): the queue, and
    # every decision made through it. None: the console shows no queue.
    approvals: Approvals | None = None
    # Seconds between two looks at the log for the live feed.
    feed_interval_s: float = 1.0
