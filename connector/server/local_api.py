"""The local listener: liveness and readiness for systemd and load balancers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from aiohttp import web

from connector.peers.trust import TrustStore
from connector.policy import Policy
from connector.server.gate import GATE, AgencyGate, host_middleware
from connector.server.headers import quiet
from connector.server.problems import flush_rejections, problem_middleware
from connector.server.rejectlog import RejectionLog


class Readiness(Protocol):
    """What /readyz reports: the policy and peers in force, why they may be an older
    version, whether the node is going away, why it is under maintenance, and what keeps
    it from answering (a full disk, a record store that does not answer), and which edits
    of connector.yaml wait for a restart."""

    @property
    def policy(self) -> Policy: ...

    @property
    def trust(self) -> TrustStore: ...

    @property
    def problems(self) -> Mapping[str, str]: ...

    @property
    def draining(self) -> bool: ...

    @property
    def maintenance(self) -> str | None: ...

    @property
    def unready(self) -> Mapping[str, str]: ...

    @property
    def restart_needed(self) -> tuple[str, ...]: ...


READINESS: web.AppKey[Readiness] = web.AppKey("readiness")


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The status for anyone (a probe needs no more); the policy's digest, the peers and
    the problems (paths, parser messages) only for a caller with a valid agency token."""
    ready = request.app[READINESS]
    maintenance, unready = ready.maintenance, ready.unready
    status = (
        "maintenance"
        if maintenance is not None
        else "unready"
        if unready
        else "degraded"
        if ready.problems
        else ("draining" if ready.draining else "ready")
    )
    body: dict[str, object] = {"status": status}
    if "Authorization" in request.headers:
        request.app[GATE].authenticate(request)
        body |= {
            "policy_digest": ready.policy.digest,
            "peers": len(ready.trust.peers),
            "problems": dict(ready.problems),
            "maintenance": maintenance,
            "unready": dict(unready),
            "restart_needed": list(ready.restart_needed),
        }
    # Degraded still answers with the last good policy: ready for traffic, but say why.
    away = ready.draining or maintenance is not None or bool(unready)
    return web.json_response(body, status=503 if away else 200)


def make_local_app(
    readiness: Readiness,
    rejections: RejectionLog,
    gate: AgencyGate,
    *,
    hosts: Iterable[str] = (),
    max_body: int,
) -> web.Application:
    """`hosts`: names besides IP addresses and localhost that the listener answers to;
    `max_body`: the largest request body read, however it is sent (chunked too)."""
    app = web.Application(
        middlewares=[problem_middleware(rejections), host_middleware(hosts)],
        client_max_size=max_body,
    )
    app.on_cleanup.append(flush_rejections(rejections))
    app[READINESS] = readiness
    app[GATE] = gate
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    return quiet(app)
