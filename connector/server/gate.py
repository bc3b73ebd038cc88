"""Who the local listener serves: the Host names it answers, agency tokens, failures per address."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from connector.errors import MisdirectedRequest, TooManyAttempts, Unauthorized
from connector.inbound.ratelimit import RateLimiter
from connector.outbound.agencies import Agency, AgencyDirectory
from connector.policy.model import Rate


def host_allowed(host: str | None, names: frozenset[str]) -> bool:
    """True for no `Host` at all, an IP literal, `localhost` (and its subdomains, RFC 6761),
    or one of `names`. DNS rebinding needs a name the attacker controls: an address or a
    loopback name cannot be one."""
    if host is None:
        return True
    host = host.strip().lower()
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else host[1:]
    else:
        name, colon, port = host.rpartition(":")
        if not colon or not port.isdigit():
            name = host
    name = name.rstrip(".")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return True
    return name == "localhost" or name.endswith(".localhost") or name in names


def host_middleware(names: Iterable[str], *, setting: str = "federation.local_hosts") -> Middleware:
    """Refuses a request whose `Host` names another site (421), before any handler runs;
    `setting`: where an admin lists the names, for the refusal to say."""
    allowed = frozenset(n.lower().rstrip(".") for n in names)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host"), allowed):
            raise MisdirectedRequest(
                f"this listener answers an IP address, localhost, or a name in {setting}"
            )
        return await handler(request)

    return middleware


class AgencyGate:
    """Agency tokens checked, with failures counted per remote address: one that failed
    `failures` times in `window_s` is refused (429, `Retry-After`) without its token being
    looked at, until enough of those failures have left the window."""

    def __init__(
        self,
        directory: AgencyDirectory,
        *,
        failures: int,
        window_s: int,
        clock: Callable[[], float],
    ) -> None:
        self.directory = directory
        self._rate = Rate(count=failures, per_seconds=window_s, text=f"{failures}/{window_s}s")
        self._failed = RateLimiter(clock)

    def authenticate(self, request: web.BaseRequest) -> Agency:
        key = ("auth", request.remote or "-")
        wait = self._failed.retry_after(key, self._rate)
        if wait > 0:
            raise TooManyAttempts(
                "too many failed attempts from this address; try again later", retry_after=wait
            )
        try:
            return self.directory.authenticate(request.headers.get("Authorization"))
        except Unauthorized:
            self._failed.try_acquire(key, self._rate)
            raise


GATE = web.AppKey("agency_gate", AgencyGate)
