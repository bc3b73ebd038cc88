"""National agencies and their API tokens: a JSON file of token hashes, re-read when it changes."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.crypto.jws import b64url
from connector.errors import ConfigError, NotFound, Unauthorized, field_problems
from connector.storage.files import atomic_write
from connector.vocabulary import AgencyKind

AGENCY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOKEN_PREFIX = "ncb"
_TOKEN = re.compile(r"^ncb\.([A-Za-z0-9][A-Za-z0-9._-]{0,63})\.([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Agency:
    """A national user organisation: its id is what outbound rules name (`agency:`)."""

    id: str
    kind: AgencyKind
    token_sha256: str
    created_at: float
    rotated_at: float | None = None
    disabled_at: float | None = None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


def new_token(agency_id: str) -> str:
    """`ncb.AGENCY.SECRET`: 256 random bits. The agency id in the token lets the node find
    the one hash to compare, and tells an operator whose token a leaked string is."""
    return f"{TOKEN_PREFIX}.{agency_id}.{b64url(os.urandom(32))}"


def token_hash(token: str) -> str:
    # A plain SHA-256 suffices: the secret has 256 random bits, so there is nothing to guess.
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def check_agency_id(agency_id: str) -> str:
    if not AGENCY_ID.match(agency_id):
        raise ConfigError(
            f"agency id {agency_id!r}: use 1 to 64 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return agency_id


def authenticate(agencies: Mapping[str, Agency], authorization: str | None) -> Agency:
    """The agency whose token the `Authorization: Bearer …` header carries."""
    if not authorization:
        raise Unauthorized("send the agency's token as 'Authorization: Bearer TOKEN'")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the agency's token as 'Authorization: Bearer TOKEN'")
    m = _TOKEN.match(token)
    agency = agencies.get(m.group(1)) if m else None
    # Compare against a hash either way, so an unknown agency costs the same as a wrong token.
    expected = agency.token_sha256 if agency is not None else "0" * 64
    if not hmac.compare_digest(token_hash(token) if m else "x" * 64, expected) or agency is None:
        raise Unauthorized("the token is not valid")
    if not agency.enabled:
        raise Unauthorized("the agency's access is disabled")
    return agency


# --- the file ---------------------------------------------------------------------------------


class _AgencyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=AGENCY_ID.pattern)
    kind: AgencyKind
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: datetime
    rotated_at: datetime | None = None
    disabled_at: datetime | None = None


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agencies: list[_AgencyEntry] = Field(default_factory=list)


def _ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def load_agencies(path: Path) -> dict[str, Agency]:
    """Read the agencies file; a missing file means no agency may use the local API."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        parsed = _File.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not a valid agencies file: not JSON ({exc})") from exc
    except ValidationError as exc:
        reasons = "; ".join(f"{p.field}: {p.reason}" for p in field_problems(exc))
        raise ConfigError(f"{path}: not a valid agencies file: {reasons}") from exc
    out: dict[str, Agency] = {}
    for e in parsed.agencies:
        if e.id in out:
            raise ConfigError(f"{path}: agency {e.id} is listed twice")
        out[e.id] = Agency(
            id=e.id,
            kind=e.kind,
            token_sha256=e.token_sha256,
            created_at=_ts(e.created_at) or 0.0,
            rotated_at=_ts(e.rotated_at),
            disabled_at=_ts(e.disabled_at),
        )
    return out


def save_agencies(path: Path, agencies: Mapping[str, Agency]) -> None:
    """Write atomically (a running node re-reads the file at its next request)."""
    doc = {
        "agencies": [
            {
                "id": a.id,
                "kind": a.kind.value,
                "token_sha256": a.token_sha256,
                "created_at": _iso(a.created_at),
                "rotated_at": _iso(a.rotated_at),
                "disabled_at": _iso(a.disabled_at),
            }
            for a in sorted(agencies.values(), key=lambda a: a.id)
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hashes only, but nobody else needs to read them: 0600.
    atomic_write(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n", mode=0o600)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[dict[str, Agency]]:
    """Read-modify-write under a lock, so two admins' commands never lose each other's edit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        agencies = load_agencies(path)
        yield agencies
        save_agencies(path, agencies)


def add_agency(path: Path, agency_id: str, kind: AgencyKind, *, now: float) -> tuple[Agency, str]:
    """A new agency and its token, which is returned here once and never stored."""
    check_agency_id(agency_id)
    with _locked(path) as agencies:
        if agency_id in agencies:
            raise ConfigError(f"agency {agency_id} exists already (rotate its token instead)")
        token = new_token(agency_id)
        agency = Agency(id=agency_id, kind=kind, token_sha256=token_hash(token), created_at=now)
        agencies[agency_id] = agency
    return agency, token


def rotate_agency(path: Path, agency_id: str, *, now: float) -> tuple[Agency, str]:
    """A fresh token; the old one stops working at once."""
    with _locked(path) as agencies:
        old = _get(agencies, agency_id)
        token = new_token(agency_id)
        agency = replace(old, token_sha256=token_hash(token), rotated_at=now)
        agencies[agency_id] = agency
    return agency, token


def set_agency_enabled(path: Path, agency_id: str, enabled: bool, *, now: float) -> Agency:
    with _locked(path) as agencies:
        agency = replace(_get(agencies, agency_id), disabled_at=None if enabled else now)
        agencies[agency_id] = agency
    return agency


def _get(agencies: Mapping[str, Agency], agency_id: str) -> Agency:
    agency = agencies.get(agency_id)
    if agency is None:
        raise NotFound(f"no agency {agency_id}", agency=agency_id)
    return agency


class AgencyDirectory:
    """The node's view of the agencies file: re-read whenever the file changes, checked by a
    stat() per request (microseconds), so `agencies disable` takes effect at the next one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._agencies: dict[str, Agency] = {}

    def current(self) -> Mapping[str, Agency]:
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            # A file that fails to load locks everyone out rather than keep a disabled
            # agency's access alive; the error is rendered as a 500 problem and logged.
            self._agencies = load_agencies(self.path) if stamp is not None else {}
            self._stamp = stamp
        return self._agencies

    def authenticate(self, authorization: str | None) -> Agency:
        return authenticate(self.current(), authorization)

    def active(self, agency_id: str) -> bool:
        """Whether the agency is in the file and not disabled (a token of it is accepted)."""
        agency = self.current().get(agency_id)
        return agency is not None and agency.enabled
