"""The shape of a policy file as pydantic models: keys, types, vocabularies and value syntax."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from connector.policy.model import (
    Notify,
    ProbingAction,
    Rate,
    Release,
    parse_duration,
    parse_window,
)
from connector.vocabulary import (
    AgencyKind,
    AnswerLevel,
    Category,
    Purpose,
    is_node_id,
    node_id_problem,
)

__all__ = [
    "NAME_RE",
    "DefaultsModel",
    "FileModel",
    "GroupMembers",
    "GroupName",
    "InboundModel",
    "OutboundModel",
    "ProbingModel",
    "WatchModel",
]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NAME_SYNTAX = (
    "letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64 characters"
)


def _node_id(value: str) -> str:
    if not is_node_id(value):
        raise ValueError(node_id_problem(value, groups_allowed=False))
    return value


def _peer_ref(value: str) -> str:
    if value == "*" or is_node_id(value):
        return value
    if value.startswith("group:"):
        if not NAME_RE.match(value[len("group:") :]):
            raise ValueError(
                f"malformed group reference {value!r}: a group name uses {_NAME_SYNTAX}"
            )
        return value
    raise ValueError(node_id_problem(value, groups_allowed=True))


def _name(kind: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(f"malformed {kind} {value!r}: use {_NAME_SYNTAX}")
        return value

    return check


def _agency_ref(value: str) -> str:
    return value if value == "*" else _name("agency id")(value)


def _rule_name(value: str) -> str:
    if not value.strip():
        raise ValueError("a rule name must not be blank")
    return value


def _rate(value: object) -> object:
    if value is None:
        raise ValueError("has no value: give N/unit such as '600/minute', or leave the key out")
    if not isinstance(value, str):
        raise ValueError(
            f"malformed rate {value!r}: write N/second, N/minute, N/hour or N/day, "
            "e.g. '600/minute'"
        )
    Rate.parse(value)
    return value


def _window(value: object) -> object:
    if value is None:
        raise ValueError("has no value: give a window such as '1h', or leave the key out")
    if not isinstance(value, str):
        raise ValueError(
            f"malformed window {value!r}: write seconds, minutes or hours, e.g. '90s', '30m', '1h'"
        )
    parse_window(value)
    return value


def _duration(value: object) -> object:
    if value is None:
        raise ValueError("has no value: give a duration such as '48h', or leave the key out")
    if not isinstance(value, str):
        raise ValueError(
            f"malformed duration {value!r}: write seconds, minutes, hours or days, "
            "e.g. '48h' or '2d'"
        )
    parse_duration(value)
    return value


def _searches_something(value: list[str] | None) -> list[str] | None:
    if value is not None and not value:
        raise ValueError(
            "an empty list searches no field, so every check would find nothing; "
            "leave the key out for the default (the fields the level shows, and identifiers)"
        )
    return value


def _record_ref(value: str) -> str:
    category, sep, record_id = value.partition("/")
    if not sep or not record_id or record_id != record_id.strip() or " " in record_id:
        raise ValueError(f"malformed record {value!r}: write category/id, e.g. 'vehicles/V-123'")
    if category not in {c.value for c in Category}:
        raise ValueError(f"unknown category {category!r} in record {value!r}")
    return value


def _present(noun: str) -> Callable[[Any], Any]:
    """Refuse an explicit null: `key:` with the value forgotten must not mean "everything"."""

    def check(value: Any) -> Any:
        if value is None:
            raise ValueError(f"has no value: give {noun}, or leave the key out")
        return [value] if isinstance(value, str) else value

    return check


def _non_empty(noun: str) -> Callable[[list[Any] | None], list[Any] | None]:
    def check(value: list[Any] | None) -> list[Any] | None:
        if value is not None and not value:
            raise ValueError(
                f"an empty list matches no {noun}; leave the key out to match every {noun}"
            )
        return value

    return check


def _star_alone(value: list[str] | None) -> list[str] | None:
    if value is not None and "*" in value and len(value) > 1:
        raise ValueError("'*' means every peer and must stand alone, not in a list")
    return value


def _agency_star_alone(value: list[str] | None) -> list[str] | None:
    if value is not None and "*" in value and len(value) > 1:
        raise ValueError("'*' means every agency and must stand alone, not in a list")
    return value


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("has no value: give one or leave the key out")
    return value


PeerRef = Annotated[str, AfterValidator(_peer_ref)]
NodeId = Annotated[str, AfterValidator(_node_id)]
GroupName = Annotated[str, AfterValidator(_name("group name"))]
ChannelName = Annotated[str, AfterValidator(_name("channel name"))]
AgencyRef = Annotated[str, AfterValidator(_agency_ref)]

PeerList = Annotated[
    list[PeerRef] | None,
    BeforeValidator(_present("node ids, group:NAME or '*'")),
    AfterValidator(_non_empty("peer")),
    AfterValidator(_star_alone),
]
AgencyKinds = Annotated[
    list[AgencyKind] | None,
    BeforeValidator(_present("agency kinds")),
    AfterValidator(_non_empty("agency kind")),
]
Purposes = Annotated[
    list[Purpose] | None,
    BeforeValidator(_present("purposes")),
    AfterValidator(_non_empty("purpose")),
]
Categories = Annotated[
    list[Category] | None,
    BeforeValidator(_present("categories")),
    AfterValidator(_non_empty("category")),
]
Channels = Annotated[list[ChannelName] | None, BeforeValidator(_present("channel names"))]
GroupMembers = Annotated[list[NodeId], BeforeValidator(_present("node ids"))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InboundModel(_Strict):
    """One `inbound:` rule as written."""

    name: Annotated[str, AfterValidator(_rule_name)]
    from_: PeerList = Field(default=None, alias="from")
    agency_kinds: AgencyKinds = None
    purposes: Purposes = None
    categories: Categories = None
    require_case: Annotated[StrictBool, BeforeValidator(_not_null)] = False
    answer: AnswerLevel
    reason: Annotated[str | None, BeforeValidator(_not_null)] = None
    redact: Annotated[list[str], BeforeValidator(_present("field names"))] = Field(
        default_factory=list
    )
    search: Annotated[
        list[str] | None,
        BeforeValidator(_present("field names")),
        AfterValidator(_searches_something),
    ] = None
    notify: Notify = Notify.NEVER
    channels: Channels = None
    rate: Annotated[str | None, BeforeValidator(_rate)] = None
    release: Annotated[Release, BeforeValidator(_not_null)] = Release.IMMEDIATE
    approval_expires: Annotated[str | None, BeforeValidator(_duration)] = None


class OutboundModel(_Strict):
    """One `outbound:` rule as written."""

    name: Annotated[str | None, BeforeValidator(_not_null), AfterValidator(_rule_name)] = None
    agency: Annotated[
        list[AgencyRef],
        BeforeValidator(_present("agency ids or '*'")),
        AfterValidator(_non_empty("agency")),
        AfterValidator(_agency_star_alone),
    ]
    categories: Categories = None
    purposes: Purposes = None
    to: PeerList = None


class WatchModel(_Strict):
    """One `watch:` entry as written."""

    name: Annotated[str | None, BeforeValidator(_not_null), AfterValidator(_rule_name)] = None
    record: Annotated[str | None, BeforeValidator(_not_null), AfterValidator(_record_ref)] = None
    category: Annotated[Category | None, BeforeValidator(_not_null)] = None
    peer: Annotated[str | None, BeforeValidator(_not_null), AfterValidator(_node_id)] = None
    notify: Channels = None

    @model_validator(mode="after")
    def _one_target(self) -> WatchModel:
        if self.record is None and self.category is None and self.peer is None:
            raise ValueError("a watch needs record, category or peer")
        if self.record is not None and self.category is not None:
            raise ValueError("give record or category, not both (a record names its category)")
        return self


class DefaultsModel(_Strict):
    """The `defaults:` block."""

    channels: Channels = None


class ProbingModel(_Strict):
    """The `probing:` block: when one peer varying its criteria on one subject is told."""

    enabled: Annotated[StrictBool, BeforeValidator(_not_null)] = True
    window: Annotated[str, BeforeValidator(_window)] = "1h"
    distinct_criteria: Annotated[StrictInt, BeforeValidator(_not_null), Field(ge=2, le=100)] = 4
    notify: Channels = None
    then: Annotated[ProbingAction, BeforeValidator(_not_null)] = ProbingAction.NOTIFY


class FileModel(_Strict):
    """A whole file; sections are checked item by item so one bad rule hides no other error."""

    groups: dict[str, Any] | None = None
    defaults: dict[str, Any] | None = None
    probing: dict[str, Any] | None = None
    inbound: list[Any] | None = None
    outbound: list[Any] | None = None
    watch: list[Any] | None = None
