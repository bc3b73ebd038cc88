"""The console's pages, each read through what the matching command reads: the enquiry log
and outbox (`enquiries`, `notifications`), the policy in force and its analysis (`policy`),
the health file and trust store (`peers status|list`), the agencies file (`agencies list`)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, get_args

import orjson
from aiohttp import web

from connector.console.overview import result_status
from connector.console.web import CONSOLE, render
from connector.enquiries.entry import Direction, LoggedEntry
from connector.errors import NotFound
from connector.notify.outbox import State
from connector.outbound.agencies import load_agencies
from connector.peers.health import load_health
from connector.policy import explain, matrix, peer_universe
from connector.vocabulary import AgencyKind, Category, Purpose, is_node_id

# The periods the enquiries page filters on, in seconds.
PERIODS = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
OUTCOMES = ("hit", "no_hit", "denied", "error")
PAGE_ROWS = 200  # the newest rows a list shows; filters narrow them further
DAY_ROWS = 100_000  # the most rows the overview reads for a day's figures
FEED_ROWS = 20


def _results(row: LoggedEntry) -> list[dict[str, Any]]:
    return [dict(r) for r in row.entry.results]


def _categories(row: LoggedEntry) -> list[str]:
    return sorted({str(c.get("category")) for c in row.entry.checks})


def _statuses(row: LoggedEntry) -> list[str]:
    return sorted({s for s in map(result_status, row.entry.results) if s})


def outcome(statuses: list[str], decision: str) -> str:
    """The one word an enquiry's row is coloured by: a hit first, then a denial or error."""
    for status in ("hit", "error", "denied"):
        if status in statuses:
            return status
    return "no_hit" if statuses else decision


def feed_item(row: LoggedEntry) -> dict[str, Any]:
    """One row as the live feed shows it, in the page and in its events alike."""
    e = row.entry
    statuses = _statuses(row)
    return {
        "outcome": outcome(statuses, e.decision),
        "seq": row.seq,
        "id": e.id,
        "at": e.at,
        "direction": e.direction,
        "peer": e.peer,
        "decision": e.decision,
        "categories": _categories(row),
        "statuses": _statuses(row),
        "checks": len(e.results) or len(e.checks),
        "hits": sum(1 for r in e.results if r.get("status") == "hit"),
        "denied": sum(1 for r in e.results if r.get("status") == "denied"),
    }


async def overview(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    now = console.clock()
    figures, truncated = await console.reader.day(
        now=now, monotonic=console.monotonic(), limit=DAY_ROWS
    )
    newest = await console.reader.enquiries(limit=FEED_ROWS)
    counts = await console.reader.notice_counts()
    _, health = load_health(console.health_file)
    return render(
        request,
        "overview.html",
        {
            "figures": figures,
            "feed": [feed_item(r) for r in newest],
            "rejections": console.rejections(),
            "peers_down": sorted(h.peer for h in health if not h.up),
            "peers_checked": len(health),
            "dead_notices": counts.get("dead", 0),
            "pending_notices": counts.get("pending", 0),
            "pending_approvals": None
            if console.approvals is None
            else console.approvals.count_pending(),
            "maintenance": console.maintenance.status(),
            "problems": dict(console.problems()),
            "truncated": truncated,
        },
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquiryFilter:
    direction: Direction | None
    peer: str | None
    category: str | None
    outcome: str | None
    rule: str | None
    period: str | None

    @classmethod
    def of(cls, query: Any) -> EnquiryFilter:
        def pick(name: str, allowed: tuple[str, ...] | None = None) -> str | None:
            value = str(query.get(name, "")).strip()
            if not value or (allowed is not None and value not in allowed):
                return None
            return value

        direction = pick("direction", get_args(Direction))
        peer = pick("peer")
        return cls(
            direction=direction,  # type: ignore[arg-type]
            peer=peer.upper() if peer else None,
            category=pick("category", tuple(c.value for c in Category)),
            outcome=pick("outcome", OUTCOMES),
            rule=pick("rule"),
            period=pick("period", tuple(PERIODS)),
        )

    def keeps(self, row: LoggedEntry) -> bool:
        results = _results(row)
        if self.category is not None and self.category not in _categories(row):
            return False
        if self.outcome is not None and self.outcome not in map(result_status, results):
            return False
        return self.rule is None or self.rule in row.entry.rules


async def enquiries(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    f = EnquiryFilter.of(request.query)
    since = None if f.period is None else console.clock() - PERIODS[f.period]
    rows = await console.reader.enquiries(
        peer=f.peer, since=since, direction=f.direction, limit=PAGE_ROWS
    )
    return render(
        request,
        "enquiries.html",
        {
            "filter": f,
            "rows": [r for r in rows if f.keeps(r)],
            "limit": PAGE_ROWS,
            "full": len(rows) >= PAGE_ROWS,
            "categories": [c.value for c in Category],
            "outcomes": OUTCOMES,
            "periods": list(PERIODS),
        },
    )


def _decoded_token(token: str) -> dict[str, Any] | None:
    """The signed query's header and claims, as logged, for reading (verified when it came;
    shown here, never trusted again)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = (
            orjson.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2]
        )
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        return None
    return {
        "header": orjson.dumps(header, option=orjson.OPT_INDENT_2).decode(),
        "claims": orjson.dumps(claims, option=orjson.OPT_INDENT_2).decode(),
    }


async def enquiry(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    enquiry_id = request.match_info["enquiry_id"]
    row = await console.reader.enquiry(enquiry_id)
    if row is None:
        raise NotFound(f"no enquiry {enquiry_id}")
    return render(
        request,
        "enquiry.html",
        {
            "row": row,
            "e": row.entry,
            "results": _results(row),
            "checks": [
                {**c, "criteria": orjson.dumps(c.get("criteria", {})).decode()}
                for c in row.entry.checks
            ],
            "token": _decoded_token(row.entry.query_token),
        },
    )


async def verify(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    report = await console.reader.verify()
    return render(request, "verify.html", {"report": report})


async def peers(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    written_at, health = load_health(console.health_file)
    by_peer = {h.peer: h for h in health}
    trust = console.trust()
    rows = []
    for p in sorted(trust.peers.values(), key=lambda p: p.id):
        rows.append(
            {
                "peer": p,
                "health": by_peer.get(p.id),
                "pins": [
                    {
                        "kid": k.key.kid,
                        "not_after": k.not_after.timestamp() if k.not_after else None,
                    }
                    for k in p.keys
                ],
            }
        )
    return render(
        request,
        "peers.html",
        {
            "rows": rows,
            "written_at": written_at,
            "certificate_expires": console.certificate_expires(),
        },
    )


async def policy(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    loaded = console.policy()
    universe = peer_universe(loaded)
    cells = {(r.peer, r.category.value): r for r in matrix(loaded, peers=universe)}
    q = request.query
    explained = None
    asked = {k: str(q.get(k, "")) for k in ("from", "agency_kind", "purpose", "category")}
    problem = None
    if any(asked.values()):
        peer = asked["from"].strip().upper()
        try:
            if not is_node_id(peer):
                raise ValueError(peer)
            explained = explain(
                loaded,
                peer=peer,
                agency_kind=AgencyKind(asked["agency_kind"]),
                purpose=Purpose(asked["purpose"]),
                category=Category(asked["category"]),
                has_case=q.get("case") == "on",
            )
        except ValueError:
            problem = "explain_input"
    return render(
        request,
        "policy.html",
        {
            "policy": loaded,
            "universe": universe,
            "categories": [c.value for c in Category],
            "cells": cells,
            "problems": dict(console.problems()),
            "asked": asked,
            "explained": explained,
            "explain_problem": problem,
            "agency_kinds": [k.value for k in AgencyKind],
            "purposes": [p.value for p in Purpose],
        },
    )


async def notifications(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    state = request.query.get("state")
    chosen: State | None = state if state in get_args(State) else None  # type: ignore[assignment]
    rows = await console.reader.notices(state=chosen, limit=PAGE_ROWS)
    counts = await console.reader.notice_counts()
    return render(
        request,
        "notifications.html",
        {
            "rows": list(reversed(rows)),
            "counts": counts,
            "state": chosen,
            "states": get_args(State),
        },
    )


async def agencies(request: web.Request, *, token: tuple[str, str] | None = None) -> web.Response:
    console = request.app[CONSOLE]
    rows = sorted(load_agencies(console.agencies_file).values(), key=lambda a: a.id)
    return render(request, "agencies.html", {"rows": rows, "new_token": token})


DECIDED_ROWS = 50


async def approvals(request: web.Request) -> web.Response:
    """The releases waiting for an approver, the most urgent first, each with what was asked
    beside the record that would leave; and the latest decisions."""
    service = request.app[CONSOLE].approvals
    if service is None:
        return render(request, "approvals.html", {"enabled": False})
    pending = service.list(state="pending")
    decided = [a for a in service.list(state=None, limit=DECIDED_ROWS) if a.state != "pending"]
    return render(
        request, "approvals.html", {"enabled": True, "pending": pending, "decided": decided}
    )
