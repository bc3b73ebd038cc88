"""The local listener: liveness and readiness for systemd and load balancers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from connector.peers.trust import TrustStore
from connector.policy import Policy
from connector.server.problems import flush_rejections, problem_middleware
from connector.server.rejectlog import RejectionLog


class Readiness(Protocol):
    """What /readyz reports: the policy and peers in force, why they may be an older
    version, and whether the node is going away."""

    @property
    def policy(self) -> Policy: ...

    @property
    def trust(self) -> TrustStore: ...

    @property
    def problems(self) -> Mapping[str, str]: ...

    @property
    def draining(self) -> bool: ...


READINESS: web.AppKey[Readiness] = web.AppKey("readiness")


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = request.app[READINESS]
    body = {
        "status": "degraded" if ready.problems else ("draining" if ready.draining else "ready"),
        "policy_digest": ready.policy.digest,
        "peers": len(ready.trust.peers),
        "problems": dict(ready.problems),
    }
    # Degraded still answers with the last good policy: ready for traffic, but say why.
    return web.json_response(body, status=503 if ready.draining else 200)


def make_local_app(readiness: Readiness, rejections: RejectionLog) -> web.Application:
    app = web.Application(middlewares=[problem_middleware(rejections)])
    app.on_cleanup.append(flush_rejections(rejections))
    app[READINESS] = readiness
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    return app
