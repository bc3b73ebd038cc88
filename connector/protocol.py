"""Wire protocol v1: query, answer and identity claims; encoding, decoding, checks in order."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    with_config,
)
from pydantic.functional_validators import AfterValidator
from typing_extensions import TypedDict

from connector.crypto.jws import ParsedJws, PublicKey, Signer, b64url, parse_compact
from connector.errors import (
    BadAnswer,
    InvalidClaims,
    MalformedToken,
    PayloadTooLarge,
    StaleToken,
    UnknownKey,
    WrongAudience,
    WrongType,
    field_problems,
)
from connector.vocabulary import (
    AgencyKind,
    AnswerLevel,
    Category,
    Purpose,
    current_name,
    current_names,
    wire_criteria,
)

PROTOCOL_VERSION = 1
MAX_TOKEN_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # 32 checks × 100 hits of full records fit easily
MAX_LIFETIME_S = 120
CLOCK_SKEW_S = 30
JOSE_MEDIA_TYPE = "application/jose"

TYP_QUERY = "ncb-query+jwt"
TYP_ANSWER = "ncb-answer+jwt"
TYP_IDENTITY = "ncb-identity+jwt"
TYP_CHECKPOINT = "ncb-checkpoint+jwt"
TYP_RECEIPT = "ncb-receipt+jwt"
TYP_RECALL = "ncb-recall+jwt"
TYP_WITNESSED = "ncb-witnessed+jwt"
TYP_ROTATION = "ncb-rotation+jwt"
TYP_RELEASE = "ncb-release+jwt"
# A witness returns at most this many of a node's checkpoints (§13.3): its newest, one a day
# before them, and every conflict, thinned to fit.
MAX_WITNESSED = 512

_JTI = re.compile(r"^[A-Za-z0-9_-]{22,128}$")

ResolveKid = Callable[[str], "tuple[str, PublicKey] | None"]
"""Maps a `kid` to (node id of the peer holding it, its key), or None when no peer pins it."""


def new_jti(now: float | None = None) -> str:
    """The issuing millisecond (48 bits) then 128 random bits, base64url (30 characters).
    The random part alone makes it unique; the time in front keeps the (iss, jti) index of
    the enquiry logs that record it growing in one place, where random ids would dirty one
    index page per row at every commit."""
    ms = int((time.time() if now is None else now) * 1000)
    return b64url(ms.to_bytes(6, "big") + os.urandom(16))


def digest(token: bytes) -> str:
    """base64url SHA-256 of a token's bytes, as carried in `query_digest`."""
    return b64url(hashlib.sha256(token).digest())


# --- claims schemas (untrusted input is parsed here, once) ----------------------------------

NodeId = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,8})?$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# Strict: "10" is not a number and 1.0 is not an integer on this wire.
MAX_CRITERION_CHARS = 512
MAX_TEMPLATE_CHARS = 4096
"""A fingerprint check's `template` (base64 of an ISO/IEC 19794-2 record of up to 3 KiB: ten
views of 40 minutiae, or one of 255 with room for extended data): §5.2's one longer value."""
CriterionValue = (
    Annotated[StrictStr, StringConstraints(max_length=MAX_TEMPLATE_CHARS)] | StrictInt | StrictBool
)
MAX_LOCI = 32
"""Members of a DNA check's `loci` object, the one criterion that is not a scalar (§5.2)."""
LociValue = Annotated[
    dict[
        Annotated[StrictStr, StringConstraints(min_length=1, max_length=20)],
        Annotated[StrictStr, StringConstraints(max_length=16)],
    ],
    Field(min_length=1, max_length=MAX_LOCI),
]
OBJECT_CRITERIA = frozenset({(Category.DNA_PROFILES, "loci")})
"""The (category, member) pairs whose criterion value is an object; every other is scalar."""
LONG_CRITERIA = frozenset({(Category.FINGERPRINTS, "template")})
"""The (category, member) pairs whose string may be up to MAX_TEMPLATE_CHARS long."""
Criterion = str | int | bool | Mapping[str, str]
CriteriaClaims = Annotated[
    dict[Annotated[str, StringConstraints(max_length=64)], CriterionValue | LociValue],
    Field(min_length=1, max_length=16),
]
"""A check's `criteria` as §5.2 bounds them (with `objects_only_where_allowed`)."""


def objects_only_where_allowed(category: Category, criteria: Mapping[str, object]) -> None:
    """ValueError unless every object among the criteria is one §5.2 allows (a DNA `loci`),
    and every string longer than 512 characters too (a fingerprint `template`)."""
    for name, value in criteria.items():
        if isinstance(value, dict) and (category, name) not in OBJECT_CRITERIA:
            raise ValueError(
                f"criteria.{name[:64]}: a string, an integer or a boolean; only the `loci` "
                "of a dna_profiles check is an object"
            )
        if (
            isinstance(value, str)
            and len(value) > MAX_CRITERION_CHARS
            and (category, name) not in LONG_CRITERIA
        ):
            raise ValueError(
                f"criteria.{name[:64]}: at most {MAX_CRITERION_CHARS} characters; only the "
                f"`template` of a fingerprints check may have up to {MAX_TEMPLATE_CHARS}"
            )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _objects_only_for_loci(check: CheckClaims) -> CheckClaims:
    objects_only_where_allowed(check["category"], check["criteria"])
    return check


# The query's claims are validated into plain dicts: pydantic-core checks the same types and
# bounds as a model would, at half the cost, with no model instance made per query.
@with_config(ConfigDict(extra="forbid"))
class CheckClaims(TypedDict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    category: Category
    criteria: CriteriaClaims
    limit: NotRequired[Annotated[StrictInt, Field(ge=1, le=100)]]  # 10 when left out


@with_config(ConfigDict(extra="forbid"))
class QueryClaims(TypedDict):
    iss: NodeId
    aud: NodeId
    iat: StrictInt
    exp: StrictInt
    jti: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{22,128}$")]
    sub: ShortText
    agency_kind: AgencyKind
    purpose: Purpose
    case: NotRequired[ShortText | None]
    checks: Annotated[
        list[Annotated[CheckClaims, AfterValidator(_objects_only_for_loci)]],
        Field(min_length=1, max_length=32),
    ]


CHECK_CLAIMS: TypeAdapter[CheckClaims] = TypeAdapter(
    Annotated[CheckClaims, AfterValidator(_objects_only_for_loci)]
)
QUERY_CLAIMS: TypeAdapter[QueryClaims] = TypeAdapter(QueryClaims)


class HitClaims(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    # A ref is shown to officers and stored in our log: only the documented shape.
    ref: Annotated[
        str,
        StringConstraints(
            pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,8})?:[a-z_]{1,32}:[A-Za-z0-9._-]{1,128}$"
        ),
    ]
    score: float
    record: dict[str, Any] = Field(default_factory=dict)
    reasons: list[Any] | None = None


class PendingClaims(BaseModel):
    """A result's `approval` member: the hit's detail waits for the responder's operator."""

    model_config = ConfigDict(extra="allow", frozen=True)
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    status: str
    level: AnswerLevel
    expires: int


class ReleasedClaims(BaseModel):
    """A released answer's `approval` claim."""

    model_config = ConfigDict(extra="allow", frozen=True)
    id: str
    status: Literal["approved", "denied", "expired"]


class ResultClaims(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    check: str
    status: Literal["hit", "no_hit", "denied", "error"]
    level: AnswerLevel
    hits: list[HitClaims] = Field(default_factory=list)
    reason: str | None = None
    retry_after: float | None = None
    # Criteria the responder's policy did not search by at the level it granted (§7.2).
    unused_criteria: list[str] = Field(default_factory=list)
    # A hit whose detail waits for the responder's operator (§15).
    approval: PendingClaims | None = None


class AnswerClaims(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    iss: str
    aud: str
    iat: int
    jti: str
    in_reply_to: str
    query_digest: str
    enquiry: str
    results: list[ResultClaims]
    # A released answer (§15.3): the approval it ends, and how it was decided.
    approval: ReleasedClaims | None = None


class ReleaseClaims(_Strict):
    """A querier's request for the release of a pending answer (§15.2)."""

    iss: NodeId
    aud: NodeId
    iat: StrictInt
    exp: StrictInt
    jti: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{22,128}$")]
    approval: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


class IdentityClaims(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    iss: str
    iat: int
    exp: int
    protocol: int
    keys: list[dict[str, Any]]
    tls_fingerprint: str | None = None
    url: str | None = None
    # During a rotation (§9.1): every certificate fingerprint the node may present, and the
    # statements, each signed by a key peers already pin, that announce what replaces what.
    tls_fingerprints: list[str] = Field(default_factory=list)
    rotations: list[str] = Field(default_factory=list)


# --- values the rest of the connector works with ---------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    id: str
    category: Category
    criteria: Mapping[str, Criterion]
    limit: int = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    iss: str
    aud: str
    iat: int
    exp: int
    jti: str
    sub: str
    agency_kind: AgencyKind
    purpose: Purpose
    case: str | None
    checks: tuple[Check, ...]

    def claims(self, checks: EncodedChecks | None = None) -> dict[str, Any]:
        """The claims set; `checks`, when given, is this query's checks already encoded."""
        if checks is not None and checks.checks is not self.checks:
            raise ValueError("the encoded checks are not this query's checks")
        out: dict[str, Any] = {
            "iss": self.iss,
            "aud": self.aud,
            "iat": self.iat,
            "exp": self.exp,
            "jti": self.jti,
            "sub": self.sub,
            "agency_kind": self.agency_kind.value,
            "purpose": self.purpose.value,
            "checks": checks_claims(self.checks) if checks is None else checks.json,
        }
        if self.case is not None:
            out["case"] = self.case
        return out


def checks_claims(checks: tuple[Check, ...]) -> list[dict[str, Any]]:
    """The `checks` claim, criteria under their v1 names: a v1 responder refuses others."""
    return [
        {
            "id": c.id,
            "category": c.category.value,
            "criteria": dict(wire_criteria(c.category, c.criteria)),
            "limit": c.limit,
        }
        for c in checks
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodedChecks:
    """A query's `checks` claim serialised once, for the queries of a fan-out that carry the
    same checks to different peers; each query is still built and signed on its own."""

    checks: tuple[Check, ...]
    json: orjson.Fragment

    @classmethod
    def of(cls, checks: tuple[Check, ...]) -> EncodedChecks:
        return cls(checks=checks, json=orjson.Fragment(orjson.dumps(checks_claims(checks))))


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    ref: str
    score: float
    record: Mapping[str, Any] = field(default_factory=dict)
    reasons: tuple[Mapping[str, Any], ...] | None = None
    # A fingerprint hit is a candidate for a human examiner, never an identification (§7.3).
    verification_required: bool = False

    def claims(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ref": self.ref,
            "score": round(self.score, 4),
            "record": dict(self.record),
        }
        if self.reasons is not None:
            out["reasons"] = [dict(r) for r in self.reasons]
        if self.verification_required:
            out["verification_required"] = True
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    check: str
    status: Literal["hit", "no_hit", "denied", "error"]
    level: AnswerLevel
    hits: tuple[Hit, ...] = ()
    reason: str | None = None
    retry_after: float | None = None
    unused_criteria: tuple[str, ...] = ()
    # `{id, status: pending, level, expires}`: the hits' detail waits for an operator (§15).
    approval: Mapping[str, Any] | None = None

    def claims(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "status": self.status,
            "level": self.level.value,
            "hits": [h.claims() for h in self.hits],
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.retry_after is not None:
            out["retry_after"] = round(self.retry_after, 3)
        if self.unused_criteria:
            out["unused_criteria"] = list(self.unused_criteria)
        if self.approval is not None:
            out["approval"] = dict(self.approval)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A query token whose signature, type, audience and time window have been checked."""

    token: bytes
    jws: ParsedJws
    payload: Mapping[str, Any]
    iss: str
    jti: str
    kid: str


# --- receiving a query, in the order docs/protocol.md §10 fixes ---------------------------------


def open_envelope(
    token: bytes, *, resolve_kid: ResolveKid, me: str, now: float, typ: str = TYP_QUERY
) -> Envelope:
    """Everything up to (not including) the replay check and the claims schema. Every
    signed request a peer sends (a query, a checkpoint, a recall) is opened here."""
    if len(token) > MAX_TOKEN_BYTES:
        raise PayloadTooLarge(f"a query token is at most {MAX_TOKEN_BYTES} bytes")
    jws = parse_compact(token)
    kid = jws.kid
    if kid is None:
        raise UnknownKey("the JWS header has no kid")
    found = resolve_kid(kid)
    if found is None:
        raise UnknownKey("no peer in the trust store holds this kid", kid=kid)
    peer_id, key = found
    jws.verify_with(key)
    if jws.typ != typ:
        raise WrongType(f"typ must be {typ!r}", typ=jws.typ)
    payload = _json_object(jws.payload)
    iss = payload.get("iss")
    if iss != peer_id:
        raise UnknownKey("the kid is not pinned for this issuer", kid=kid)
    if payload.get("aud") != me:
        raise WrongAudience(f"this node is {me}", aud=payload.get("aud"))
    check_window(payload, now=now)
    jti = payload.get("jti")
    if not isinstance(jti, str) or not _JTI.match(jti):
        raise InvalidClaims(
            "jti must be 22 to 128 characters of the base64url alphabet (≥128 random bits)"
        )
    return Envelope(token=token, jws=jws, payload=payload, iss=peer_id, jti=jti, kid=kid)


def _json_object(payload: bytes) -> dict[str, Any]:
    """A JWS payload that must be a JSON object (§10, step 9)."""
    try:
        found = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise MalformedToken("the JWS payload is not JSON") from exc
    if not isinstance(found, dict):
        raise MalformedToken("the JWS payload is not a JSON object")
    return found


def check_window(payload: Mapping[str, Any], *, now: float) -> None:
    iat, exp = payload.get("iat"), payload.get("exp")
    if (
        not isinstance(iat, int)
        or not isinstance(exp, int)
        or isinstance(iat, bool)
        or isinstance(exp, bool)
    ):
        raise InvalidClaims("iat and exp must be integers (NumericDate)")
    if exp <= iat or exp - iat > MAX_LIFETIME_S:
        raise StaleToken(f"exp must be after iat and at most {MAX_LIFETIME_S} s after it")
    if iat > now + CLOCK_SKEW_S:
        raise StaleToken("the token is issued in the future", iat=iat, now=int(now))
    if exp < now - CLOCK_SKEW_S:
        raise StaleToken("the token has expired", exp=exp, now=int(now))


def _schema_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": e.field, "message": e.reason} for e in field_problems(exc)]


def parse_query(envelope: Envelope) -> Query:
    """The claims schema, last of the checks."""
    try:
        claims = QUERY_CLAIMS.validate_python(envelope.payload)
    except ValidationError as exc:
        raise InvalidClaims(
            "the query claims do not match the schema", errors=_schema_errors(exc)
        ) from exc
    checks = claims["checks"]
    if len(checks) > 1 and len({c["id"] for c in checks}) != len(checks):
        raise InvalidClaims("check ids must be unique within a query")
    return Query(
        iss=claims["iss"],
        aud=claims["aud"],
        iat=claims["iat"],
        exp=claims["exp"],
        jti=claims["jti"],
        sub=claims["sub"],
        agency_kind=claims["agency_kind"],
        purpose=claims["purpose"],
        case=claims.get("case"),
        checks=tuple(
            [
                Check(
                    id=c["id"],
                    category=c["category"],
                    criteria=c["criteria"],
                    limit=c.get("limit", 10),
                )
                for c in checks
            ]
        ),
    )


# --- building messages -----------------------------------------------------------------------


def sign_query(query: Query, signer: Signer, checks: EncodedChecks | None = None) -> bytes:
    return signer.sign_compact(orjson.dumps(query.claims(checks)), typ=TYP_QUERY)


def make_query(
    *,
    iss: str,
    aud: str,
    sub: str,
    agency_kind: AgencyKind,
    purpose: Purpose,
    checks: tuple[Check, ...],
    case: str | None = None,
    now: float | None = None,
    lifetime: int = 60,
    jti: str | None = None,
) -> Query:
    iat = int(time.time() if now is None else now)
    return Query(
        iss=iss,
        aud=aud,
        iat=iat,
        exp=iat + lifetime,
        jti=jti or new_jti(now),
        sub=sub,
        agency_kind=agency_kind,
        purpose=purpose,
        case=case,
        checks=checks,
    )


def sign_answer(
    *,
    signer: Signer,
    iss: str,
    aud: str,
    in_reply_to: str,
    query_digest: str,
    enquiry: str,
    results: Sequence[CheckResult],
    now: float,
) -> bytes:
    claims = {
        "iss": iss,
        "aud": aud,
        "iat": int(now),
        "jti": new_jti(),
        "in_reply_to": in_reply_to,
        "query_digest": query_digest,
        "enquiry": enquiry,
        "results": [r.claims() for r in results],
    }
    return signer.sign_compact(orjson.dumps(claims), typ=TYP_ANSWER)


def sign_released(
    *,
    signer: Signer,
    iss: str,
    aud: str,
    in_reply_to: str,
    query_digest: str,
    enquiry: str,
    approval: str,
    status: str,
    results: Sequence[Mapping[str, Any]],
    now: float,
) -> bytes:
    """A released answer (§15.3): an answer to the original query — its `in_reply_to` and
    `query_digest` — signed now, naming the approval it ends and how it was decided."""
    claims = {
        "iss": iss,
        "aud": aud,
        "iat": int(now),
        "jti": new_jti(now),
        "in_reply_to": in_reply_to,
        "query_digest": query_digest,
        "enquiry": enquiry,
        "approval": {"id": approval, "status": status},
        "results": [dict(r) for r in results],
    }
    return signer.sign_compact(orjson.dumps(claims), typ=TYP_ANSWER)


def sign_release_request(
    signer: Signer, *, iss: str, aud: str, approval: str, now: float, lifetime: int = 60
) -> tuple[bytes, str]:
    """The querier's signed request for a pending answer's release (§15.2), and its jti."""
    jti = new_jti(now)
    claims = {
        "iss": iss,
        "aud": aud,
        "iat": int(now),
        "exp": int(now) + lifetime,
        "jti": jti,
        "approval": approval,
    }
    return signer.sign_compact(orjson.dumps(claims), typ=TYP_RELEASE), jti


def parse_release(envelope: Envelope) -> ReleaseClaims:
    """A release request's claims schema, last of its checks (§15.2)."""
    try:
        return ReleaseClaims.model_validate(envelope.payload)
    except ValidationError as exc:
        raise InvalidClaims(
            "the release claims do not match the schema", errors=_schema_errors(exc)
        ) from exc


def open_released(
    token: bytes,
    *,
    keys: Sequence[PublicKey],
    peer: str,
    me: str,
    query_jti: str,
    query_digest: str,
    check_ids: Sequence[str],
    approval: str,
    now: float,
) -> AnswerClaims:
    """Verify a released answer as an answer to the original query (§8), and that it ends
    `approval`: the checks of §8, the approval named, held results no longer pending."""
    answer = _open_pinned(token, AnswerClaims, typ=TYP_ANSWER, keys=keys, what="released answer")
    if answer.iss != peer:
        raise BadAnswer("the released answer's iss is not the peer we asked")
    if answer.aud != me:
        raise BadAnswer("the released answer is addressed to another node")
    if answer.in_reply_to != query_jti:
        raise BadAnswer("in_reply_to does not match our query's jti")
    if answer.query_digest != query_digest:
        raise BadAnswer("query_digest does not match the query we sent")
    if abs(answer.iat - now) > MAX_LIFETIME_S + CLOCK_SKEW_S:
        raise BadAnswer("the released answer's iat is outside the window")
    if answer.approval is None or answer.approval.id != approval:
        raise BadAnswer("the released answer does not name the approval asked for")
    if sorted(r.check for r in answer.results) != sorted(check_ids):
        raise BadAnswer("the released answer's results do not match our checks one for one")
    if any(r.approval is not None for r in answer.results):
        raise BadAnswer("a released answer has no result still pending")
    # The querier keeps no category per check here; a hit's ref names it (§7.3).
    categories = {
        r.check: Category(category)
        for r in answer.results
        for h in r.hits[:1]
        if (category := h.ref.split(":", 2)[1]) in _CATEGORY_NAMES
    }
    return _records_in_current_names(answer, categories)


_Claims = TypeVar("_Claims", bound=BaseModel)


def _open_pinned(
    token: bytes, model: type[_Claims], *, typ: str, keys: Sequence[PublicKey], what: str
) -> _Claims:
    """A peer's signed `what` (an answer, a witness's reply) up to its claims: its size, one
    of the keys pinned for the peer by its kid, the signature, the typ, the claims schema.
    Every failure is a BadAnswer: what a peer sends back is never our error."""
    try:
        if len(token) > MAX_ANSWER_BYTES:
            raise BadAnswer(f"the {what} is too large")
        jws = parse_compact(token)
        key = next((k for k in keys if k.kid == jws.kid), None)
        if key is None:
            raise BadAnswer(
                f"the {what} is signed with a key we do not pin for this peer", kid=jws.kid
            )
        jws.verify_with(key)
        if jws.typ != typ:
            raise BadAnswer(f"typ must be {typ!r}")
        return model.model_validate_json(jws.payload)
    except BadAnswer:
        raise
    except (MalformedToken, ValidationError) as exc:
        raise BadAnswer(f"the {what} is malformed: {exc}") from exc
    except Exception as exc:
        raise BadAnswer(str(exc)) from exc


def open_answer(
    token: bytes,
    *,
    key: PublicKey,
    peer: str,
    me: str,
    query_token: bytes,
    query: Query,
    now: float,
) -> AnswerClaims:
    """Verify a peer's answer: signature with the pinned key, typ, iss, aud and the binding."""
    return open_answer_pinned(
        token, keys=(key,), peer=peer, me=me, query_token=query_token, query=query, now=now
    )


def open_answer_pinned(
    token: bytes,
    *,
    keys: Sequence[PublicKey],
    peer: str,
    me: str,
    query_token: bytes,
    query: Query,
    now: float,
) -> AnswerClaims:
    """Verify a peer's answer signed by one of the keys pinned for it (rotation: the kid names
    which): signature, typ, then the claims, parsed once, iss, aud and the binding."""
    answer = _open_pinned(token, AnswerClaims, typ=TYP_ANSWER, keys=keys, what="answer")
    if answer.iss != peer:
        raise BadAnswer("the answer's iss is not the peer we asked")
    if answer.aud != me:
        raise BadAnswer("the answer is addressed to another node")
    if answer.in_reply_to != query.jti:
        raise BadAnswer("in_reply_to does not match our query's jti")
    if answer.query_digest != digest(query_token):
        raise BadAnswer("query_digest does not match the query we sent")
    if abs(answer.iat - now) > MAX_LIFETIME_S + CLOCK_SKEW_S:
        raise BadAnswer("the answer's iat is outside the window")
    if sorted(r.check for r in answer.results) != sorted(c.id for c in query.checks):
        raise BadAnswer("the answer's results do not match our checks one for one")
    return _records_in_current_names(answer, {c.id: c.category for c in query.checks})


_CATEGORY_NAMES = frozenset(c.value for c in Category)


def _records_in_current_names(
    answer: AnswerClaims, categories: Mapping[str, Category]
) -> AnswerClaims:
    """The answer with every hit's record and unused criterion under today's names: a v1
    peer sends the first names (`number`), a newer one may send today's; the rest of the
    node knows only today's. The same object when no name is old, as is usual."""
    results: list[ResultClaims] = []
    for r in answer.results:
        category = categories.get(r.check)
        if category is None:
            results.append(r)
            continue
        hits = [_hit_in_current_names(category, h) for h in r.hits]
        unused = [current_name(category, name) for name in r.unused_criteria]
        if unused == r.unused_criteria and all(
            new is old for new, old in zip(hits, r.hits, strict=True)
        ):
            results.append(r)
        else:
            results.append(r.model_copy(update={"hits": hits, "unused_criteria": unused}))
    if all(new is old for new, old in zip(results, answer.results, strict=True)):
        return answer
    return answer.model_copy(update={"results": results})


def _hit_in_current_names(category: Category, hit: HitClaims) -> HitClaims:
    record = current_names(category, hit.record)
    return hit if record is hit.record else hit.model_copy(update={"record": dict(record)})


def sign_identity(
    *,
    signer: Signer,
    node: str,
    keys: list[dict[str, Any]],
    tls_fingerprint: str | None,
    url: str | None,
    now: float,
    tls_fingerprints: Sequence[str] = (),
    rotations: Sequence[str] = (),
) -> bytes:
    claims: dict[str, Any] = {
        "iss": node,
        "iat": int(now),
        "exp": int(now) + 300,
        "protocol": PROTOCOL_VERSION,
        "keys": keys,
        "tls_fingerprint": tls_fingerprint,
        "url": url,
    }
    # Only while a rotation is under way: outside one the token is what it always was.
    if rotations:
        claims["tls_fingerprints"] = list(tls_fingerprints)
        claims["rotations"] = list(rotations)
    return signer.sign_compact(orjson.dumps(claims), typ=TYP_IDENTITY)


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedIdentity:
    """What a node's identity token says of its keys and certificates, besides who it is."""

    keys: tuple[dict[str, Any], ...]
    tls_fingerprint: str | None
    tls_fingerprints: tuple[str, ...] = ()
    rotations: tuple[str, ...] = ()


# --- rotation statements (§9.1) ----------------------------------------------------------------

Fingerprint = Annotated[str, StringConstraints(pattern=r"^[0-9A-F]{2}(:[0-9A-F]{2}){31}$")]


class RotationClaims(BaseModel):
    """A node's word, signed by a key its peers pin, on the key or certificate replacing one."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    iss: StrictStr
    iat: StrictInt
    exp: StrictInt  # when the replaced key or certificate retires: the statement ends with it
    kind: Literal["key", "tls"]
    replaces: StrictStr  # the replaced key's kid, or the replaced certificate's fingerprint
    jwk: dict[str, Any] | None = None  # kind "key": the next key
    tls_fingerprint: Fingerprint | None = None  # kind "tls": the next certificate
    activate_at: StrictInt  # from when the node signs with, or presents, the new one


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationStatement:
    """A verified rotation statement: `old` (kid or fingerprint) is replaced by `new` and
    stays valid until `not_after`."""

    node: str
    kind: Literal["key", "tls"]
    old: str
    new_key: PublicKey | None
    new_tls_fingerprint: str | None
    activate_at: int
    not_after: int
    signed_by: str


def sign_rotation(
    signer: Signer,
    *,
    node: str,
    replaces: str,
    new_key: PublicKey | None = None,
    new_tls_fingerprint: str | None = None,
    activate_at: float,
    not_after: float,
    now: float,
) -> str:
    """A key rotation is signed by the key it replaces; a certificate's by the node's key."""
    claims: dict[str, Any] = {
        "iss": node,
        "iat": int(now),
        "exp": int(not_after),
        "kind": "key" if new_key is not None else "tls",
        "replaces": replaces,
        "activate_at": int(activate_at),
    }
    if new_key is not None:
        claims["jwk"] = new_key.jwk()
    else:
        claims["tls_fingerprint"] = new_tls_fingerprint
    return signer.sign_compact(orjson.dumps(claims), typ=TYP_ROTATION).decode("ascii")


def open_rotation(
    token: str, *, keys: Sequence[PublicKey], node: str, now: float
) -> RotationStatement:
    """A statement signed by one of `keys` (those pinned for `node` and valid now), naming
    `node`, not expired; a key's rotation signed by the very key it replaces."""
    try:
        jws = parse_compact(token.encode("ascii"))
    except UnicodeEncodeError as exc:
        raise MalformedToken("a rotation statement is ASCII") from exc
    key = next((k for k in keys if k.kid == jws.kid), None)
    if key is None:
        raise UnknownKey("the rotation statement is signed by a key not pinned", kid=jws.kid)
    jws.verify_with(key)
    if jws.typ != TYP_ROTATION:
        raise WrongType(f"typ must be {TYP_ROTATION!r}", typ=jws.typ)
    try:
        claims = RotationClaims.model_validate_json(jws.payload)
    except ValidationError as exc:
        raise MalformedToken(f"rotation claims are malformed: {exc}") from exc
    if claims.iss != node:
        raise InvalidClaims(f"the rotation statement is {claims.iss}'s, not {node}'s")
    if claims.exp < now - CLOCK_SKEW_S:
        raise StaleToken("the rotation statement has expired: what it replaced has retired")
    if claims.iat > now + CLOCK_SKEW_S:
        raise StaleToken("the rotation statement is issued in the future")
    new_key = None
    if claims.kind == "key":
        if claims.replaces != jws.kid:
            raise InvalidClaims("a key's rotation must be signed by the key it replaces")
        try:
            new_key = PublicKey.from_jwk(claims.jwk or {})
        except ValueError as exc:
            raise MalformedToken(f"the rotation statement's jwk: {exc}") from exc
    elif claims.tls_fingerprint is None:
        raise MalformedToken("a certificate's rotation names the next tls_fingerprint")
    return RotationStatement(
        node=claims.iss,
        kind=claims.kind,
        old=claims.replaces,
        new_key=new_key,
        new_tls_fingerprint=claims.tls_fingerprint,
        activate_at=claims.activate_at,
        not_after=claims.exp,
        signed_by=key.kid,
    )


def open_identity(token: bytes, *, now: float) -> tuple[IdentityClaims, PublicKey]:
    """Check a self-signed identity token: signed by one of the keys it lists, under its kid,
    and current."""
    jws = parse_compact(token)
    if jws.typ != TYP_IDENTITY:
        raise MalformedToken(f"typ must be {TYP_IDENTITY!r}")
    try:
        claims = IdentityClaims.model_validate_json(jws.payload)
    except ValidationError as exc:
        raise MalformedToken(f"identity claims are malformed: {exc}") from exc
    if claims.iat > now + CLOCK_SKEW_S or claims.exp < now - CLOCK_SKEW_S:
        raise StaleToken("the identity token is outside its validity window")
    for jwk in claims.keys:
        try:
            key = PublicKey.from_jwk(jwk)
        except ValueError as exc:
            raise MalformedToken(f"the identity token lists a bad key: {exc}") from exc
        if key.kid == jws.kid:
            jws.verify_with(key)
            return claims, key
    raise UnknownKey("the identity token is not signed by a key it lists")


# --- witnessed checkpoints (§13) -------------------------------------------------------------

Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class CheckpointClaims(_Strict):
    """A node's word on its own enquiry log: row `seq` has hash `hash`. Sent to a witness it
    also carries aud, exp and jti (§13.1); kept in a journal or printed by verify, it does not."""

    iss: NodeId
    seq: Annotated[StrictInt, Field(ge=0)]
    hash: Hex64
    iat: StrictInt
    aud: NodeId | None = None
    exp: StrictInt | None = None
    jti: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{22,128}$")] | None = None


class _ReplyClaims(_Strict):
    """What binds a witness's reply to the request it answers."""

    iss: NodeId
    aud: NodeId
    iat: StrictInt
    in_reply_to: str


class ReceiptClaims(_ReplyClaims):
    seq: Annotated[StrictInt, Field(ge=0)]
    hash: Hex64
    latest_seq: Annotated[StrictInt, Field(ge=0)]
    latest_hash: Hex64


class WitnessedClaims(_ReplyClaims):
    checkpoints: Annotated[
        list[Annotated[str, StringConstraints(max_length=2048)]], Field(max_length=MAX_WITNESSED)
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A signed checkpoint as a witness keeps it: the claims it vouches for, and the token."""

    node: str
    seq: int
    hash: str
    iat: int
    token: str


def sign_checkpoint(
    signer: Signer,
    *,
    node: str,
    seq: int,
    head: str,
    at: float,
    aud: str | None = None,
    jti: str | None = None,
) -> str:
    """A compact JWS any JOSE library verifies with the node's published key. Signed, a
    checkpoint copied off the host (journal, a ticket, a witness) cannot later be made up
    by whoever edits the log: only the node's key could have vouched for it. `aud`: the
    peer it is sent to as a witness, `jti` the id its receipt answers (§13.1)."""
    claims: dict[str, Any] = {"iss": node, "seq": seq, "hash": head, "iat": int(at)}
    if aud is not None:
        claims.update(aud=aud, exp=int(at) + 60, jti=jti or new_jti(at))
    return signer.sign_compact(orjson.dumps(claims), typ=TYP_CHECKPOINT).decode("ascii")


def checkpoint_claims(payload: Mapping[str, Any]) -> CheckpointClaims:
    try:
        return CheckpointClaims.model_validate(payload)
    except ValidationError as exc:
        raise InvalidClaims(
            "the checkpoint claims do not match the schema", errors=_schema_errors(exc)
        ) from exc


def open_checkpoint(token: str, *, keys: Sequence[PublicKey], node: str) -> Checkpoint:
    """A checkpoint signed by one of `keys` (a node's own, or those pinned for a peer) that
    names `node` as its issuer. Its age does not matter: what it vouched for stays true."""
    try:
        jws = parse_compact(token.encode("ascii"))
    except UnicodeEncodeError as exc:
        raise MalformedToken("a checkpoint is ASCII") from exc
    key = next((k for k in keys if k.kid == jws.kid), None)
    if key is None:
        raise UnknownKey("the checkpoint is signed with a key not held for its node", kid=jws.kid)
    jws.verify_with(key)
    if jws.typ != TYP_CHECKPOINT:
        raise WrongType(f"typ must be {TYP_CHECKPOINT!r}", typ=jws.typ)
    claims = checkpoint_claims(_json_object(jws.payload))
    if claims.iss != node:
        raise InvalidClaims(f"the checkpoint is {claims.iss}'s, not {node}'s")
    return Checkpoint(
        node=claims.iss, seq=claims.seq, hash=claims.hash, iat=claims.iat, token=token
    )


def sign_receipt(
    signer: Signer,
    *,
    iss: str,
    aud: str,
    in_reply_to: str,
    kept: Checkpoint,
    latest: Checkpoint,
    now: float,
) -> bytes:
    """The witness's answer to a checkpoint: kept, and the newest it holds of that node."""
    claims = {
        "iss": iss,
        "aud": aud,
        "iat": int(now),
        "in_reply_to": in_reply_to,
        "seq": kept.seq,
        "hash": kept.hash,
        "latest_seq": latest.seq,
        "latest_hash": latest.hash,
    }
    return signer.sign_compact(orjson.dumps(claims), typ=TYP_RECEIPT)


def sign_recall(signer: Signer, *, iss: str, aud: str, now: float) -> tuple[str, bytes]:
    """A node asking a witness for the checkpoints it holds of it: (jti, token)."""
    jti = new_jti(now)
    claims = {"iss": iss, "aud": aud, "iat": int(now), "exp": int(now) + 60, "jti": jti}
    return jti, signer.sign_compact(orjson.dumps(claims), typ=TYP_RECALL)


def sign_witnessed(
    signer: Signer,
    *,
    iss: str,
    aud: str,
    in_reply_to: str,
    checkpoints: Sequence[str],
    now: float,
) -> bytes:
    claims = {
        "iss": iss,
        "aud": aud,
        "iat": int(now),
        "in_reply_to": in_reply_to,
        "checkpoints": list(checkpoints),
    }
    return signer.sign_compact(orjson.dumps(claims), typ=TYP_WITNESSED)


_Reply = TypeVar("_Reply", bound=_ReplyClaims)


def _open_reply(
    token: bytes,
    model: type[_Reply],
    *,
    typ: str,
    keys: Sequence[PublicKey],
    peer: str,
    me: str,
    in_reply_to: str,
    now: float,
) -> _Reply:
    """A witness's signed reply: a pinned key of `peer`, the typ, the claims, the binding."""
    claims = _open_pinned(token, model, typ=typ, keys=keys, what="reply")
    if (claims.iss, claims.aud, claims.in_reply_to) != (peer, me, in_reply_to):
        raise BadAnswer("the reply is not the peer's answer to our request")
    if abs(claims.iat - now) > MAX_LIFETIME_S + CLOCK_SKEW_S:
        raise BadAnswer("the reply's iat is outside the window")
    return claims


def open_receipt(
    token: bytes,
    *,
    keys: Sequence[PublicKey],
    peer: str,
    me: str,
    in_reply_to: str,
    now: float,
) -> ReceiptClaims:
    return _open_reply(
        token,
        ReceiptClaims,
        typ=TYP_RECEIPT,
        keys=keys,
        peer=peer,
        me=me,
        in_reply_to=in_reply_to,
        now=now,
    )


def open_witnessed(
    token: bytes,
    *,
    keys: Sequence[PublicKey],
    peer: str,
    me: str,
    in_reply_to: str,
    now: float,
) -> WitnessedClaims:
    return _open_reply(
        token,
        WitnessedClaims,
        typ=TYP_WITNESSED,
        keys=keys,
        peer=peer,
        me=me,
        in_reply_to=in_reply_to,
        now=now,
    )
