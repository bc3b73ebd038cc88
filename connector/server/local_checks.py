"""The agencies' API: `POST /local/v1/checks` (and `/stream`), bearer tokens, the OpenAPI file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
import structlog
import yaml
from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    create_model,
    model_validator,
)

from connector.errors import InvalidRequest, PayloadTooLarge, field_problems
from connector.outbound.agencies import Agency
from connector.outbound.fanout import CheckOutcome, FanOut, PeerOutcome
from connector.outbound.national import NationalResult
from connector.outbound.prepare import Prepared, prepare
from connector.outbound.request import Request
from connector.outbound.subject import Subject, subject_checks, subject_fields, with_minutiae
from connector.peers.trust import TrustStore
from connector.policy import Policy
from connector.protocol import (
    MAX_TEMPLATE_CHARS,
    Check,
    CriteriaClaims,
    LociValue,
    NodeId,
    ShortText,
    objects_only_where_allowed,
)
from connector.records.fingerprints.extraction import MAX_IMAGE_CHARS, Mindtct
from connector.records.store import RecordStore
from connector.server.events import EventStream
from connector.server.gate import AgencyGate
from connector.vocabulary import Category, Purpose

log = structlog.get_logger(__name__)

MAX_BODY = 64 * 1024 + MAX_IMAGE_CHARS
"""64 KiB of checks, and room for one fingerprint image (base64)."""


# --- the request body, parsed once here -------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Text = Annotated[str, StringConstraints(min_length=1, max_length=512)]
TemplateText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEMPLATE_CHARS)]
ImageText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_IMAGE_CHARS)]


class CheckIn(_Strict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    category: Category
    criteria: CriteriaClaims
    limit: Annotated[StrictInt, Field(ge=1, le=100)] = 10

    @model_validator(mode="after")
    def _objects_only_for_loci(self) -> CheckIn:
        objects_only_where_allowed(self.category, self.criteria)
        return self


def _subject_model() -> type[_Strict]:
    """The local API's `subject`: Subject's fields, each optional non-empty text (a DNA
    profile's loci: an object, a fingerprint's template: longer text, both bounded as on the
    wire; a fingerprint image: base64 PNG, bounded by MAX_IMAGE_BYTES)."""
    definitions: dict[str, Any] = {
        f.name: (
            (
                LociValue
                if f.loci
                else TemplateText
                if f.template
                else ImageText
                if f.image
                else Text
            )
            | None,
            None,
        )
        for f in subject_fields()
    }
    return create_model("SubjectIn", __base__=_Strict, **definitions)


# `subject` has Subject's fields by construction; mypy, which cannot see fields made at run
# time, checks it as the strict base model.
if TYPE_CHECKING:
    SubjectIn = _Strict
else:
    SubjectIn = _subject_model()


class ChecksIn(_Strict):
    purpose: Purpose
    case: ShortText | None = None
    sub: ShortText
    checks: Annotated[list[CheckIn], Field(max_length=32)] = Field(default_factory=list)
    subject: SubjectIn | None = None
    peers: list[NodeId] | Literal["*"] = "*"
    deadline_ms: Annotated[StrictInt, Field(ge=50, le=30_000)] | None = None

    @model_validator(mode="after")
    def _something_to_check(self) -> ChecksIn:
        if not self.checks and self.subject is None:
            raise ValueError("give checks, a subject, or both")
        return self


# --- what a handler works with ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalChecks:
    """Everything the agencies' API needs, built by the composition root (once the fan-out
    exists, at the app's start)."""

    node: str
    agencies: AgencyGate
    policy: Callable[[], Policy]
    trust: Callable[[], TrustStore]
    store: RecordStore
    fanout: FanOut
    default_deadline_ms: int
    # Extracts a subject's fingerprint image before anything is sent.
    mindtct: Mindtct = field(default_factory=Mindtct)
    # A release stream's keep-alive and its longest life (`approvals.stream_heartbeat_s`,
    # `approvals.stream_max_s`); `closing` ends every stream when the node stops.
    heartbeat_s: float = 15.0
    stream_max_s: float = 3_600.0
    closing: asyncio.Event = field(default_factory=asyncio.Event)


LOCAL_CHECKS = web.AppKey("local_checks", LocalChecks)


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    agency: Agency
    check: Prepared
    deadline_ms: int
    started: float


async def _prepare(request: web.Request) -> Accepted:
    deps = request.app[LOCAL_CHECKS]
    started = time.monotonic()
    agency = deps.agencies.authenticate(request)
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"the request body is at most {MAX_BODY} bytes")
    # A chunked body has no length to check first: the app's client_max_size (MAX_BODY)
    # stops reading it at the limit, and the problem middleware makes that a 413 too.
    raw = await request.read()
    try:
        body = ChecksIn.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidRequest(
            "the request does not match the schema",
            errors=[{"field": e.field, "message": e.reason} for e in field_problems(exc)],
        ) from exc
    checks = [
        Check(id=c.id, category=c.category, criteria=c.criteria, limit=c.limit) for c in body.checks
    ]
    if body.subject is not None:
        subject = await with_minutiae(Subject(**body.subject.model_dump()), deps.mindtct)
        checks.extend(subject_checks(subject))
    sub = body.sub if body.sub.startswith(f"{agency.id}/") else f"{agency.id}/{body.sub}"
    ask = Request(
        agency=agency.id,
        agency_kind=agency.kind,
        sub=sub[:256],
        purpose=body.purpose,
        case=body.case,
        checks=tuple(checks),
    )
    prepared = await prepare(
        node=deps.node,
        request=ask,
        peers=body.peers,
        policy=deps.policy(),
        trust=deps.trust(),
        store=deps.store,
    )
    return Accepted(
        agency=agency,
        check=prepared,
        deadline_ms=body.deadline_ms or deps.default_deadline_ms,
        started=started,
    )


def _outcomes(request: web.Request, a: Accepted) -> AsyncIterator[PeerOutcome]:
    p = a.check
    return request.app[LOCAL_CHECKS].fanout.run(
        p.request,
        p.plans,
        trust=p.trust,
        policy_digest=p.policy_digest,
        deadline_s=a.deadline_ms / 1000,
    )


# --- rendering ------------------------------------------------------------------------------


def _check_json(c: CheckOutcome) -> dict[str, Any]:
    out: dict[str, Any] = {"status": c.status, "hits": [h.model_dump() for h in c.hits]}
    if c.level is not None:
        out["level"] = c.level
    if c.reason is not None:
        out["reason"] = c.reason
    if c.unused_criteria:
        out["unused_criteria"] = list(c.unused_criteria)
    if c.approval is not None:
        out["approval"] = c.approval
    return out


def _peer_json(o: PeerOutcome) -> dict[str, Any]:
    return {
        "peer": o.peer,
        "status": o.status,
        "elapsed_ms": o.elapsed_ms,
        "detail": o.detail,
        "enquiry": o.enquiry,
        "answer_digest": o.answer_digest,
        "log_id": o.log_id,
    }


def _national_json(r: NationalResult) -> dict[str, Any]:
    out: dict[str, Any] = {"status": r.status, "hits": [h.claims() for h in r.hits]}
    if r.reason is not None:
        out["reason"] = r.reason
    return out


def _elapsed_ms(a: Accepted) -> float:
    return round((time.monotonic() - a.started) * 1000, 1)


def _log_done(a: Accepted, outcomes: list[PeerOutcome]) -> None:
    p = a.check
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    log.info(
        "agency_check",
        id=p.id,
        agency=a.agency.id,
        purpose=p.request.purpose.value,
        checks=len(p.request.checks),
        peers=len(p.plans),
        outcomes=counts,
        hits=sum(1 for o in outcomes for c in o.checks if c.status == "hit"),
        elapsed_ms=_elapsed_ms(a),
    )


async def post_checks(request: web.Request) -> web.Response:
    a = await _prepare(request)
    p = a.check
    outcomes = [o async for o in _outcomes(request, a)]
    order = {plan.peer: i for i, plan in enumerate(p.plans)}
    outcomes.sort(key=lambda o: order[o.peer])
    _log_done(a, outcomes)
    checks = []
    for i, check in enumerate(p.request.checks):
        checks.append(
            {
                "id": check.id,
                "category": check.category.value,
                "criteria": dict(check.criteria),
                "national": _national_json(p.national[i]),
                "peers": [{"peer": o.peer, **_check_json(o.checks[i])} for o in outcomes],
            }
        )
    doc = {
        "id": p.id,
        "agency": a.agency.id,
        "purpose": p.request.purpose.value,
        "case": p.request.case,
        "deadline_ms": a.deadline_ms,
        "complete": all(o.status != "timeout" for o in outcomes),
        "elapsed_ms": _elapsed_ms(a),
        "checks": checks,
        "peers": [_peer_json(o) for o in outcomes],
    }
    return web.Response(body=orjson.dumps(doc), content_type="application/json")


async def post_checks_stream(request: web.Request) -> web.StreamResponse:
    a = await _prepare(request)
    p = a.check
    stream = await EventStream.open(request)
    await stream.send(
        "accepted",
        {
            "id": p.id,
            "agency": a.agency.id,
            "purpose": p.request.purpose.value,
            "deadline_ms": a.deadline_ms,
            "peers": [plan.peer for plan in p.plans],
            "checks": [
                {"id": c.id, "category": c.category.value, "criteria": dict(c.criteria)}
                for c in p.request.checks
            ],
        },
    )
    await stream.send(
        "national",
        {
            "results": [
                {"check": c.id, **_national_json(r)}
                for c, r in zip(p.request.checks, p.national, strict=True)
            ]
        },
    )
    outcomes = []
    async for o in _outcomes(request, a):
        outcomes.append(o)
        await stream.send(
            "peer",
            {
                **_peer_json(o),
                "results": [
                    {"check": c.id, **_check_json(oc)}
                    for c, oc in zip(p.request.checks, o.checks, strict=True)
                ],
            },
        )
    _log_done(a, outcomes)
    done: dict[str, Any] = {
        "complete": all(o.status != "timeout" for o in outcomes),
        "elapsed_ms": _elapsed_ms(a),
    }
    if any(c.approval is not None for o in outcomes for c in o.checks):
        # Where the releases the peers hold for their operators will show (release_stream).
        done["releases"] = f"/local/v1/checks/{p.id}/stream"
    await stream.send("done", done)
    return await stream.close()


@cache
def openapi_document() -> bytes:
    text = (
        resources.files("connector")
        .joinpath("data/local-api.openapi.yaml")
        .read_text(encoding="utf-8")
    )
    return orjson.dumps(yaml.safe_load(text))


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=openapi_document(), content_type="application/json")


def add_routes(app: web.Application) -> None:
    """The routes; their LocalChecks goes into app[LOCAL_CHECKS] before the app serves."""
    app.router.add_post("/local/v1/checks", post_checks)
    app.router.add_post("/local/v1/checks/stream", post_checks_stream)
    app.router.add_get("/local/v1/openapi.json", get_openapi)
