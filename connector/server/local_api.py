"""The local listener: liveness and readiness for systemd and load balancers."""

from __future__ import annotations

from aiohttp import web

from connector.node.live import LiveState
from connector.server.problems import flush_rejections, problem_middleware
from connector.server.rejectlog import RejectionLog

LIVE = web.AppKey("live", LiveState)


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    live = request.app[LIVE]
    body = {
        "status": "degraded" if live.problems else ("draining" if live.draining else "ready"),
        "policy_digest": live.policy.digest,
        "peers": len(live.trust.peers),
        "problems": dict(live.problems),
    }
    # Degraded still answers with the last good policy: ready for traffic, but say why.
    return web.json_response(body, status=503 if live.draining else 200)


def make_local_app(live: LiveState, rejections: RejectionLog) -> web.Application:
    app = web.Application(middlewares=[problem_middleware(rejections)])
    app.on_cleanup.append(flush_rejections(rejections))
    app[LIVE] = live
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    return app
