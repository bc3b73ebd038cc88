"""The error tree, each failure with its HTTP status and short code; pydantic's errors in words."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import ValidationError

PROBLEM_BASE = "https://ncb-connector.org/problems/"


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"
    # False for the few problem documents that are a normal answer, not a refusal: they are
    # neither logged as `request_rejected` nor counted in `ncb_rejections_total`.
    refusal: ClassVar[bool] = True

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.code

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        doc: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance is not None:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc


# --- configuration and files an admin edits -------------------------------------------


class ConfigError(ConnectorError):
    code = "config_invalid"
    title = "Configuration is invalid"


class SchemaError(ConfigError):
    """A database whose schema this version does not serve: too old, too new, or unknown."""

    code = "schema_mismatch"


class PolicyError(ConnectorError):
    code = "policy_invalid"
    title = "Policy is invalid"


class TrustStoreError(ConnectorError):
    code = "trust_store_invalid"
    title = "Trust store is invalid"


class ImportFileError(ConnectorError):
    code = "import_invalid"
    title = "Import file is invalid"
    status = 422


class BackupError(ConnectorError):
    """A backup that cannot be made, an archive that is not whole or not signed by its node,
    or a restore that would overwrite something."""

    code = "backup_invalid"
    title = "Backup is invalid"


class AuditTrailError(ConnectorError):
    """The admin audit trail cannot be read, or cannot be appended to (a line that is not an
    entry at its end, a directory the command may not write)."""

    code = "audit_trail"
    title = "Admin audit trail unreadable"


# --- the peer API, in the order docs/protocol.md §10 checks them ----------------------------


class ProtocolError(ConnectorError):
    """A message from a peer that we refuse; rendered as an RFC 9457 problem."""

    status = 400
    code = "bad_request"
    title = "Bad request"


class PayloadTooLarge(ProtocolError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(ProtocolError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class MalformedToken(ProtocolError):
    status = 400
    code = "malformed_token"
    title = "Not a compact JWS"


class UnknownKey(ProtocolError):
    status = 401
    code = "unknown_key"
    title = "Signing key not known for this issuer"


class BadSignature(ProtocolError):
    status = 401
    code = "bad_signature"
    title = "Signature does not verify"


class WrongType(ProtocolError):
    status = 400
    code = "wrong_type"
    title = "Wrong token type"


class WrongAudience(ProtocolError):
    status = 403
    code = "wrong_audience"
    title = "Token is addressed to another node"


class StaleToken(ProtocolError):
    status = 401
    code = "stale_token"
    title = "Token outside its validity window"


class Replay(ProtocolError):
    status = 409
    code = "replay"
    title = "Token already seen"


class InvalidClaims(ProtocolError):
    status = 422
    code = "invalid_claims"
    title = "Claims do not match the schema"


class InvalidCriteria(InvalidClaims):
    """Criteria that parse but are wrong, such as an MRZ with a bad check digit."""

    code = "invalid_criteria"
    title = "Check criteria are invalid"

    def __init__(self, detail: str, *, field: str, **extra: Any) -> None:
        super().__init__(detail, field=field, **extra)
        self.field = field


class NotFound(ProtocolError):
    status = 404
    code = "not_found"
    title = "Not found"


class MalformedRequest(ProtocolError):
    """Refused by the HTTP parser before any handler ran: a bad request line or header,
    ambiguous framing (Content-Length with Transfer-Encoding: request smuggling), a head
    too large, a body whose chunks or length do not add up."""

    code = "malformed_request"
    title = "Malformed HTTP request"


class UnsupportedContentEncoding(ProtocolError):
    status = 415
    code = "unsupported_content_encoding"
    title = "Unsupported content encoding"


class Unavailable(ConnectorError):
    status = 503
    code = "unavailable"
    title = "Service unavailable"


class UnderMaintenance(Unavailable):
    """An admin switched the node to maintenance: nothing is answered, nothing is lost."""

    code = "maintenance"
    title = "The node is under maintenance"


# --- talking to peers -------------------------------------------------------------------


class PeerError(ConnectorError):
    """A peer failed us: unreachable, wrong answer, bad signature."""

    status = 502
    code = "peer_error"
    title = "Peer failed"


class PeerUnreachable(PeerError):
    code = "peer_unreachable"
    title = "Peer unreachable"


class PeerTimeout(PeerUnreachable):
    """No answer within the time the fan-out could give this peer."""

    code = "peer_timeout"
    title = "Peer did not answer in time"


class PeerRejected(PeerError):
    """The peer answered with a problem document."""

    code = "peer_rejected"
    title = "Peer rejected the query"


class BadAnswer(PeerError):
    """The peer's answer does not verify or is not bound to our query."""

    code = "bad_answer"
    title = "Peer's answer does not verify"


class OutboundDenied(ConnectorError):
    status = 403
    code = "outbound_denied"
    title = "Outbound policy denies this query"


# --- the local (agency) API -------------------------------------------------------------


class Unauthorized(ConnectorError):
    """No bearer token, an unknown one, or one whose agency is disabled."""

    status = 401
    code = "unauthorized"
    title = "A valid agency token is required"


class InvalidRequest(ConnectorError):
    """An agency's request body that does not match the local API's schema."""

    status = 422
    code = "invalid_request"
    title = "The request does not match the schema"


class TooManyAttempts(ConnectorError):
    """An address that failed to authenticate too often: refused until its window moves on."""

    status = 429
    code = "too_many_attempts"
    title = "Too many failed attempts"


class NotAllowed(ConnectorError):
    """An operator console account whose role does not allow the action (or no account)."""

    status = 403
    code = "not_allowed"
    title = "Your role does not allow this"


class FormExpired(ConnectorError):
    """A console form sent without the token of the session that showed it: forged by
    another site, or shown before the session it is sent with."""

    status = 403
    code = "form_expired"
    title = "The form is not from this session"


class TooManyCheckpoints(ProtocolError):
    """A peer sending its checkpoints faster than a witness keeps them (protocol §13.1)."""

    status = 429
    code = "too_many_checkpoints"
    title = "Checkpoints come too often"


# --- approvals before release ----------------------------------------------------------------


class UnknownApproval(ProtocolError):
    """No approval by that id, or one a peer other than the asker names: the same answer
    either way, so a peer learns nothing of another's approvals (protocol.md §15)."""

    status = 404
    code = "unknown_approval"
    title = "No such approval"


class ApprovalPending(ProtocolError):
    """A release asked for before an operator decided: ask again later (`retry_after`)."""

    status = 409
    code = "approval_pending"
    title = "The release still waits for an operator"
    # The asking peer's own approval, still waiting: a poll answered, not a refusal (it is
    # counted in `ncb_release_polls_total` instead).
    refusal = False


class ReleasePolledTooSoon(ProtocolError):
    """A peer asking for a pending release again well before the `retry_after` it was
    given: refused (and counted as a refusal) until that time has passed."""

    status = 429
    code = "release_polled_too_soon"
    title = "The release was asked for again too soon"


class ApprovalDecided(ConnectorError):
    """An operator's decision on an approval already decided (by another operator, or
    expired meanwhile): nothing changed."""

    status = 409
    code = "approval_decided"
    title = "The approval is already decided"


class MisdirectedRequest(ConnectorError):
    """A `Host` the local listener does not answer to (a browser's DNS rebinding)."""

    status = 421
    code = "misdirected_request"
    title = "This listener does not answer for that host"


class EnquiryLogError(ConnectorError):
    """The log could not commit (a full disk, a database gone): nothing it would have
    recorded was answered. Unavailable rather than an internal error: it mends itself when
    the log can be written again, and the same signed query may be sent again."""

    status = 503
    code = "enquiry_log"
    title = "Enquiry log failure"


class EnquiryLogLost(EnquiryLogError):
    """The log's file was removed or replaced under the running node: no answer may leave
    whose row would go to a file nobody will read again."""

    status = 503
    code = "enquiry_log_lost"
    title = "Enquiry log unavailable"


class EnquiryArchiveError(ConnectorError):
    """An archive of the enquiry log that could not be written whole and checked (no row
    was removed), or an archive file that is not what its node signed."""

    code = "enquiry_archive"
    title = "Enquiry-log archive failed"


class EnquiryLogForgotten(ConfigError):
    """At start: the log does not hold the checkpoint this node kept of it (missing, empty,
    or another log)."""

    code = "enquiry_log_forgotten"


# --- pydantic's validation errors, in the words an admin or a peer reads ---------------


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when `value` is close to one of `choices`, else nothing: the
    hint every admin-file error gives for a misspelt key or value."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FieldProblem:
    """One thing pydantic found wrong in a value: where (`loc`, or `field` as text) and why."""

    loc: tuple[str | int, ...]
    type: str  # pydantic's error type, e.g. "missing", "extra_forbidden", "value_error"
    reason: str
    input: Any = None
    ctx: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def field(self) -> str:
        """The dotted path (`peers.0.id`); empty when the whole value is at fault."""
        return ".".join(str(part) for part in self.loc)


def field_problems(exc: ValidationError) -> list[FieldProblem]:
    """Every error of a pydantic validation, worded for an admin or a peer: the messages of
    our own validators without the "Value error, " pydantic puts in front of them."""
    found = []
    for error in exc.errors(include_url=False):
        reason = str(error["msg"])
        if error["type"] == "value_error":
            reason = reason.removeprefix("Value error, ")
        found.append(
            FieldProblem(
                loc=tuple(error["loc"]),
                type=error["type"],
                reason=reason,
                input=error.get("input"),
                ctx=error.get("ctx") or {},
            )
        )
    return found
