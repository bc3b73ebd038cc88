"""The console's routes: which handler answers which path, and the app built with them."""

from __future__ import annotations

from aiohttp import web

from connector.console import actions, auth, pages
from connector.console.feed import end_streams, events, feed_ctx
from connector.console.sources import Console
from connector.console.web import language_response, make_console_app


async def _language(request: web.Request) -> web.Response:
    return language_response(request)


def build_console(console: Console) -> web.Application:
    """Every page is a GET that changes nothing; every change is a POST with the session's
    CSRF token, and the role it needs is checked in its handler."""
    app = make_console_app(console)
    r = app.router
    r.add_get("/login", auth.login_page)
    r.add_post("/login", auth.login)
    r.add_get("/language", _language)
    r.add_post("/logout", auth.logout)
    r.add_get("/", pages.overview)
    r.add_get("/events", events)
    r.add_get("/enquiries", pages.enquiries)
    r.add_post("/enquiries/verify", pages.verify)
    r.add_get("/enquiries/{enquiry_id}", pages.enquiry)
    r.add_get("/approvals", pages.approvals)
    r.add_post("/approvals/{approval_id}", actions.decide)
    r.add_get("/peers", pages.peers)
    r.add_post("/peers/{peer}/repin", actions.repin)
    r.add_get("/policy", pages.policy)
    r.add_get("/notifications", pages.notifications)
    r.add_post("/notifications/retry", actions.retry_notices)
    r.add_get("/agencies", pages.agencies)
    r.add_post("/agencies/{agency_id}/{state:enable|disable}", actions.agency_state)
    r.add_post("/agencies/{agency_id}/rotate", actions.agency_rotate)
    r.add_post("/maintenance", actions.maintenance)
    app.cleanup_ctx.append(feed_ctx)
    app.on_shutdown.append(end_streams)
    return app
