"""Console sessions in memory: a random id per login, its CSRF token, an idle timeout; the
login form's token bound to a cookie, with no session before the password is right."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from connector.crypto.jws import b64url

# A restart logs everyone out: sessions are not worth a table, and an id never outlives the
# process that issued it. Memory is bounded by accounts × this: an idle session is dropped
# when next presented, or when its account's newer ones push it out.
MAX_SESSIONS_PER_ACCOUNT = 8


def _random() -> str:
    return b64url(os.urandom(32))


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    id: str
    account: str
    csrf: str
    created_at: float
    last_seen: float


class Sessions:
    """Sessions by id. An id is made only at a successful login, never taken from a request,
    so an id an attacker planted before the login is not the one the login gives (no
    fixation)."""

    def __init__(self, *, idle_timeout_s: float, clock: Callable[[], float]) -> None:
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._by_id: dict[str, Session] = {}
        # Signs the login form's token: nothing kept per visitor before a login.
        self._login_key = os.urandom(32)

    def __len__(self) -> int:
        return len(self._by_id)

    def start(self, account: str) -> Session:
        now = self._clock()
        mine = sorted(
            (s for s in self._by_id.values() if s.account == account), key=lambda s: s.last_seen
        )
        for old in mine[: max(0, len(mine) - MAX_SESSIONS_PER_ACCOUNT + 1)]:
            del self._by_id[old.id]
        session = Session(
            id=_random(), account=account, csrf=_random(), created_at=now, last_seen=now
        )
        self._by_id[session.id] = session
        return session

    def touch(self, session_id: str | None) -> Session | None:
        """The session, its idle time reset; None when unknown or idle too long."""
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self.idle_timeout_s:
            del self._by_id[session_id]
            return None
        session = replace(session, last_seen=now)
        self._by_id[session_id] = session
        return session

    def alive(self, session_id: str) -> bool:
        """Whether the session still stands, without counting this as its use (a live
        stream asks at each event: an open page must not keep a session from idling out)."""
        session = self._by_id.get(session_id)
        return session is not None and self._clock() - session.last_seen <= self.idle_timeout_s

    def end(self, session_id: str) -> Session | None:
        return self._by_id.pop(session_id, None)

    def end_account(self, account: str) -> None:
        for s in [s for s in self._by_id.values() if s.account == account]:
            del self._by_id[s.id]

    # --- the login form ---------------------------------------------------------------------

    @staticmethod
    def new_visitor() -> str:
        return _random()

    def login_token(self, visitor: str) -> str:
        return hmac.new(self._login_key, visitor.encode(), hashlib.sha256).hexdigest()

    def login_token_ok(self, visitor: str | None, token: str | None) -> bool:
        if not visitor or not token:
            return False
        return hmac.compare_digest(self.login_token(visitor), token)


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
