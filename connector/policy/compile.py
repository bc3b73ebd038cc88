"""Checking policy files into one Policy: groups, defaults, rules, watches, and the lint."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from yaml.nodes import Node

from connector.errors import PolicyError
from connector.policy.analysis import redundant_outbound, unreachable_inbound
from connector.policy.diagnostics import Checker, CheckReport, did_you_mean, in_order
from connector.policy.model import (
    DEFAULT_APPROVAL_EXPIRES,
    InboundRule,
    Notify,
    OutboundRule,
    Policy,
    Probing,
    Rate,
    Release,
    Watch,
    digest_sources,
    parse_duration,
    parse_window,
)
from connector.policy.read import ParsedFile, PolicySource, parse_source, read_sources
from connector.policy.schema import (
    NAME_RE,
    DefaultsModel,
    GroupMembers,
    GroupName,
    InboundModel,
    OutboundModel,
    ProbingModel,
    WatchModel,
)
from connector.records.categories import CATEGORIES
from connector.records.kinds.registry import KINDS
from connector.settings.yamlfile import Position, locate, position
from connector.vocabulary import PERSON_CATEGORIES, AnswerLevel, Category, current_name

__all__ = ["check_policy", "check_sources", "load_policy"]


def check_policy(directory: Path) -> CheckReport:
    """Check every `*.yaml` file of `directory` as one policy; never raises for bad content."""
    sources, problems = read_sources(directory)
    # The files that could be read are checked even when another could not (a `.yml`): an
    # admin fixing one error at a time should see them all in one run.
    report = check_sources(sources) if sources else None
    errors = [p for p in problems if p.severity == "error"]
    if report is not None:
        errors += report.errors
    warnings = [p for p in problems if p.severity == "warning"]
    if report is not None:
        warnings += report.warnings
    return CheckReport(
        errors=in_order(errors),
        warnings=in_order(warnings),
        policy=report.policy if report is not None and not errors else None,
    )


def load_policy(directory: Path) -> Policy:
    """The policy in `directory`; PolicyError listing every error if there is any."""
    report = check_policy(directory)
    if report.policy is None:
        count = len(report.errors)
        detail = str(report.errors[0])
        if count > 1:
            detail += f" (and {count - 1} more error{'s' if count > 2 else ''})"
        raise PolicyError(detail, diagnostics=[d.as_dict() for d in report.errors])
    return report.policy


_GROUP_NAME: TypeAdapter[str] = TypeAdapter(GroupName)
_GROUP_MEMBERS: TypeAdapter[list[str]] = TypeAdapter(GroupMembers)


@dataclass(frozen=True, slots=True)
class _Origin:
    file: str
    position: Position

    def __str__(self) -> str:
        return f"{self.file}:{self.position.line}"


def check_sources(sources: Sequence[PolicySource]) -> CheckReport:
    """Check policy files, given in load order, as one policy."""
    checker = Checker()
    files = [f for f in (parse_source(s, checker) for s in sources) if f is not None]
    groups, broken = _groups(files, checker)
    channels = _defaults(files, checker)
    names: dict[str, _Origin] = {}
    inbound, inbound_nodes = _inbound(files, checker, groups, broken, channels, names)
    outbound, outbound_nodes = _outbound(files, checker, groups, broken, names)
    watches = _watches(files, checker, channels)
    probing = _probing(files, checker, channels)
    _lint(checker, inbound, inbound_nodes, outbound, outbound_nodes)
    policy = None
    if not checker.errors:
        policy = Policy(
            digest=digest_sources((s.name, s.data) for s in sources),
            groups=groups,
            inbound=tuple(inbound),
            outbound=tuple(outbound),
            watches=tuple(watches),
            channels=channels,
            probing=probing,
            files=tuple(s.name for s in sources),
        )
    return CheckReport(
        errors=in_order(checker.errors), warnings=in_order(checker.warnings), policy=policy
    )


def _groups(
    files: Sequence[ParsedFile], checker: Checker
) -> tuple[dict[str, frozenset[str]], frozenset[str]]:
    """The valid groups, and the names of groups defined with errors (already reported)."""
    groups: dict[str, frozenset[str]] = {}
    broken: set[str] = set()
    origins: dict[str, _Origin] = {}
    for file in files:
        shown = file.source.shown
        for name, members in file.sections.get("groups", {}).items():
            prefix: tuple[str | int, ...] = ("groups", name)
            key_node = locate(file.root, (*prefix, "[key]"))
            ok = True
            try:
                _GROUP_NAME.validate_python(name)
            except ValidationError as exc:
                ok = False
                checker.validation(
                    exc, file.source.shown, file.root, (*prefix, "[key]"), None, None
                )
            try:
                validated = _GROUP_MEMBERS.validate_python(members)
            except ValidationError as exc:
                ok = False
                checker.validation(
                    exc, file.source.shown, file.root, prefix, None, None, f"group {name!r}: "
                )
            if not ok:
                broken.add(name)
                continue
            if name in origins:
                checker.add(
                    "error",
                    shown,
                    key_node,
                    None,
                    f"group {name!r} is already defined at {origins[name]}",
                )
                continue
            origins[name] = _Origin(shown, position(key_node))
            groups[name] = frozenset(validated)
            if not validated:
                checker.add(
                    "warning",
                    shown,
                    key_node,
                    None,
                    f"group {name!r} is empty: a rule naming only this group matches no peer",
                )
    return groups, frozenset(broken - groups.keys())


def _first(
    checker: Checker, file: ParsedFile, node: Node, what: str, origin: _Origin | None
) -> bool:
    """Whether this file is the first to set `what`, a setting of the whole policy; a second
    one is an error at its own line, naming the first."""
    if origin is not None:
        checker.add(
            "error",
            file.source.shown,
            node,
            None,
            f"{what} is already set at {origin}; set it in one file only",
        )
        return False
    return True


def _defaults(files: Sequence[ParsedFile], checker: Checker) -> tuple[str, ...]:
    channels: tuple[str, ...] = ()
    origin: _Origin | None = None
    for file in files:
        raw = file.sections.get("defaults")
        if raw is None:
            continue
        try:
            model = DefaultsModel.model_validate(raw)
        except ValidationError as exc:
            checker.validation(
                exc, file.source.shown, file.root, ("defaults",), None, DefaultsModel
            )
            continue
        if model.channels is None:
            continue
        node = locate(file.root, ("defaults", "channels"), want_key=True)
        if not _first(checker, file, node, "defaults.channels", origin):
            continue
        origin = _Origin(file.source.shown, position(node))
        channels = tuple(model.channels)
    return channels


def _label(raw: object, fallback: str) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("name"), str) and raw["name"].strip():
        return str(raw["name"])
    return fallback


def _claim_name(
    checker: Checker,
    names: dict[str, _Origin],
    name: str,
    file: ParsedFile,
    node: Node,
    what: str,
) -> bool:
    if name in names:
        checker.add(
            "error",
            file.source.shown,
            node,
            name,
            f"duplicate {what} name {name!r} (first at {names[name]}); names must be unique "
            "across all files, since the enquiry log records them",
        )
        return False
    names[name] = _Origin(file.source.shown, position(node))
    return True


def _strings(raw: object) -> list[tuple[int, str]]:
    """The text items of a raw list value (a lone string counts as a one-item list)."""
    if isinstance(raw, str):
        return [(0, raw)]
    if isinstance(raw, list):
        return [(i, item) for i, item in enumerate(raw) if isinstance(item, str)]
    return []


def _check_groups(
    raw: dict[str, Any],
    key: str,
    groups: Mapping[str, frozenset[str]],
    broken: frozenset[str],
    checker: Checker,
    file: ParsedFile,
    prefix: tuple[str | int, ...],
    rule: str,
) -> bool:
    """Report every `group:NAME` under `key` that names no group; True when all resolve.

    A group whose own definition has errors does resolve (its errors are reported where it
    is defined) but leaves the rule unbuildable.
    """
    ok = True
    for index, entry in _strings(raw.get(key)):
        group = entry[len("group:") :]
        if not entry.startswith("group:") or not NAME_RE.match(group) or group in groups:
            continue
        ok = False
        if group not in broken:
            checker.add(
                "error",
                file.source.shown,
                locate(file.root, (*prefix, key, index)),
                rule,
                f"{key}: unknown group {group!r}{did_you_mean(group, groups.keys() | broken)}",
            )
    return ok


def _all_fields(category: Category) -> frozenset[str]:
    return frozenset(CATEGORIES[category].fields)


def _searchable_fields(category: Category) -> frozenset[str]:
    kind = KINDS.get(category)
    return kind.compared_fields() if kind is not None else frozenset()


def _check_fields(
    raw: dict[str, Any],
    key: str,
    fields_of: Callable[[Category], frozenset[str]],
    noun: str,
    checker: Checker,
    file: ParsedFile,
    prefix: tuple[str | int, ...],
    rule: str,
) -> bool:
    """Report every name under `key` that is a `noun` of none of the rule's categories (of
    any category when the rule lists none), with the nearest one; True when all are."""
    values = {c.value for c in Category}
    listed = [Category(c) for _, c in _strings(raw.get("categories")) if c in values]
    categories = sorted(set(listed)) or list(Category)
    known = frozenset().union(*(fields_of(c) for c in categories))
    scope = "of " + ", ".join(categories) if listed else "of any category"
    ok = True
    for index, name in _strings(raw.get(key)):
        if name not in known:
            ok = False
            checker.add(
                "error",
                file.source.shown,
                locate(file.root, (*prefix, key, index)),
                rule,
                f"{key}: {name!r} is not a {noun} {scope}{did_you_mean(name, known)}",
            )
    return ok


def _current_field_names(raw: dict[str, Any]) -> dict[str, Any]:
    """The rule with each field under `redact` and `search` written with an old spelling
    (`number` for `document_number`) read as its name today, for the rule's categories: a
    policy written before the names were one keeps its meaning. Positions are kept (one name
    for one name), so errors still point at what was written."""
    values = {c.value for c in Category}
    listed = [Category(c) for _, c in _strings(raw.get("categories")) if c in values]
    categories = sorted(set(listed)) or list(Category)
    renamed = dict(raw)
    for key in ("redact", "search"):
        names = raw.get(key)
        if isinstance(names, list):
            renamed[key] = [_current_field_name(categories, name) for name in names]
    return renamed


def _current_field_name(categories: Sequence[Category], name: object) -> object:
    for category in categories:
        if isinstance(name, str) and (today := current_name(category, name)) != name:
            return today
    return name


def _expand(
    entries: list[str] | None, groups: Mapping[str, frozenset[str]]
) -> tuple[tuple[str, ...] | None, frozenset[str] | None]:
    """Entries as written, and the node ids they stand for (None: every peer)."""
    if entries is None or entries == ["*"]:
        return None, None
    peers: set[str] = set()
    for entry in entries:
        if entry.startswith("group:"):
            peers |= groups[entry[len("group:") :]]
        else:
            peers.add(entry)
    return tuple(entries), frozenset(peers)


def _inbound(
    files: Sequence[ParsedFile],
    checker: Checker,
    groups: Mapping[str, frozenset[str]],
    broken: frozenset[str],
    default_channels: tuple[str, ...],
    names: dict[str, _Origin],
) -> tuple[list[InboundRule], list[tuple[ParsedFile, Node]]]:
    rules: list[InboundRule] = []
    nodes: list[tuple[ParsedFile, Node]] = []
    for file in files:
        shown = file.source.shown
        for index, raw in enumerate(file.sections.get("inbound", [])):
            prefix: tuple[str | int, ...] = ("inbound", index)
            rule_node = locate(file.root, prefix)
            label = _label(raw, f"inbound[{index}]")
            ok = True
            # Cross-references are checked on the raw rule too, so that one malformed key
            # does not hide an unknown group or field elsewhere in the same rule.
            if isinstance(raw, dict):
                raw = _current_field_names(raw)
                if label == raw.get("name"):
                    name_node = locate(file.root, (*prefix, "name"))
                    ok &= _claim_name(checker, names, label, file, name_node, "rule")
                ok &= _check_groups(raw, "from", groups, broken, checker, file, prefix, label)
                ok &= _check_fields(
                    raw, "redact", _all_fields, "field", checker, file, prefix, label
                )
                # Only fields a check is compared with: searching `remarks` would do nothing,
                # and a rule that seems to narrow the search but does not is worse than an error.
                ok &= _check_fields(
                    raw,
                    "search",
                    _searchable_fields,
                    "searchable field",
                    checker,
                    file,
                    prefix,
                    label,
                )
            try:
                model = InboundModel.model_validate(raw)
            except ValidationError as exc:
                checker.validation(exc, file.source.shown, file.root, prefix, label, InboundModel)
                continue
            if not ok:
                continue
            written, peers = _expand(model.from_, groups)
            categories = None if model.categories is None else frozenset(model.categories)
            channels = tuple(model.channels) if model.channels is not None else default_channels
            rule = InboundRule(
                name=model.name,
                from_entries=written,
                peers=peers,
                agency_kinds=None if model.agency_kinds is None else frozenset(model.agency_kinds),
                purposes=None if model.purposes is None else frozenset(model.purposes),
                categories=categories,
                require_case=model.require_case,
                answer=model.answer,
                reason=model.reason,
                redact=frozenset(model.redact),
                search=None if model.search is None else frozenset(model.search),
                notify=model.notify,
                channels=channels,
                rate=None if model.rate is None else Rate.parse(model.rate),
                release=model.release,
                approval_expires=DEFAULT_APPROVAL_EXPIRES
                if model.approval_expires is None
                else parse_duration(model.approval_expires),
                file=shown,
                line=position(rule_node).line,
            )
            if not _check_release(model, rule, checker, file, prefix):
                continue
            rules.append(rule)
            nodes.append((file, rule_node))
            if rule.notify is not Notify.NEVER and not channels:
                checker.add(
                    "warning",
                    shown,
                    locate(file.root, (*prefix, "notify")),
                    rule.name,
                    f"notify: {rule.notify} but no channel (neither channels: here nor "
                    "defaults: channels); nobody will be told",
                )
            if (
                rule.peers is None
                and rule.answer is AnswerLevel.FULL
                and (categories is None or categories & PERSON_CATEGORIES)
            ):
                persons = sorted(PERSON_CATEGORIES & (categories or PERSON_CATEGORIES))
                checker.add(
                    "warning",
                    shown,
                    locate(file.root, (*prefix, "answer")),
                    rule.name,
                    f"every peer gets full records of {', '.join(persons)}; "
                    "name the peers in from: or give a lower answer level",
                )
    return rules, nodes


def _check_release(
    model: InboundModel,
    rule: InboundRule,
    checker: Checker,
    file: ParsedFile,
    prefix: tuple[str | int, ...],
) -> bool:
    """`release: approval` holds what `summary` or `full` shows; anything else is nonsense
    an admin must hear of before the node runs it."""
    shown = file.source.shown
    if rule.release is Release.APPROVAL and rule.answer < AnswerLevel.SUMMARY:
        checker.add(
            "error",
            shown,
            locate(file.root, (*prefix, "release")),
            rule.name,
            f"release: approval with answer: {rule.answer.value} holds nothing: a peer sees "
            "at most the refs until approved; give answer: summary or full, or leave "
            "release: out",
        )
        return False
    if model.approval_expires is not None and rule.release is not Release.APPROVAL:
        checker.add(
            "error",
            shown,
            locate(file.root, (*prefix, "approval_expires")),
            rule.name,
            "approval_expires: without release: approval; add release: approval, or leave "
            "approval_expires: out",
        )
        return False
    if rule.release is Release.APPROVAL and not rule.channels:
        checker.add(
            "warning",
            shown,
            locate(file.root, (*prefix, "release")),
            rule.name,
            "release: approval but no channel (neither channels: here nor defaults: "
            "channels); nobody is told an approval waits, and the peer's answers expire "
            "unless an operator runs `approvals list`",
        )
    return True


def _outbound(
    files: Sequence[ParsedFile],
    checker: Checker,
    groups: Mapping[str, frozenset[str]],
    broken: frozenset[str],
    names: dict[str, _Origin],
) -> tuple[list[OutboundRule], list[tuple[ParsedFile, Node]]]:
    rules: list[OutboundRule] = []
    nodes: list[tuple[ParsedFile, Node]] = []
    overall = -1
    for file in files:
        for index, raw in enumerate(file.sections.get("outbound", [])):
            overall += 1
            prefix: tuple[str | int, ...] = ("outbound", index)
            rule_node = locate(file.root, prefix)
            agencies = (
                ",".join(a for _, a in _strings(raw.get("agency"))) if isinstance(raw, dict) else ""
            )
            default_name = f"outbound[{overall}] {agencies}".rstrip()
            label = _label(raw, default_name)
            ok = True
            if isinstance(raw, dict):
                explicit = label == raw.get("name")
                name_node = locate(file.root, (*prefix, "name")) if explicit else rule_node
                ok &= _claim_name(checker, names, label, file, name_node, "rule")
                ok &= _check_groups(raw, "to", groups, broken, checker, file, prefix, label)
            try:
                model = OutboundModel.model_validate(raw)
            except ValidationError as exc:
                checker.validation(exc, file.source.shown, file.root, prefix, label, OutboundModel)
                continue
            if not ok:
                continue
            written, peers = _expand(model.to, groups)
            rules.append(
                OutboundRule(
                    name=label,
                    agencies=None if model.agency == ["*"] else frozenset(model.agency),
                    categories=None if model.categories is None else frozenset(model.categories),
                    purposes=None if model.purposes is None else frozenset(model.purposes),
                    to_entries=written,
                    peers=peers,
                    file=file.source.shown,
                    line=position(rule_node).line,
                )
            )
            nodes.append((file, rule_node))
    return rules, nodes


def _watches(
    files: Sequence[ParsedFile], checker: Checker, default_channels: tuple[str, ...]
) -> list[Watch]:
    watches: list[Watch] = []
    names: dict[str, _Origin] = {}
    overall = 0
    for file in files:
        shown = file.source.shown
        for index, raw in enumerate(file.sections.get("watch", [])):
            prefix: tuple[str | int, ...] = ("watch", index)
            node = locate(file.root, prefix)
            label = _label(raw, f"watch[{overall}]")
            overall += 1
            try:
                model = WatchModel.model_validate(raw)
            except ValidationError as exc:
                checker.validation(exc, file.source.shown, file.root, prefix, label, WatchModel)
                continue
            target = " ".join(
                str(part) for part in (model.record, model.category, model.peer) if part
            )
            name = model.name or f"{label} {target}"
            _claim_name(checker, names, name, file, node, "watch")
            channels = tuple(model.notify) if model.notify is not None else default_channels
            if not channels:
                checker.add(
                    "warning",
                    shown,
                    node,
                    name,
                    "no channel (neither notify: here nor defaults: channels); nobody will be told",
                )
            watches.append(
                Watch(
                    name=name,
                    record=model.record,
                    category=model.category,
                    peer=model.peer,
                    channels=channels,
                    file=shown,
                    line=position(node).line,
                )
            )
    return watches


def _probing(
    files: Sequence[ParsedFile], checker: Checker, default_channels: tuple[str, ...]
) -> Probing:
    """The `probing:` section (in one file at most); detection with a notice to the default
    channels when no file has one."""
    found: Probing | None = None
    origin: _Origin | None = None
    for file in files:
        raw = file.sections.get("probing")
        if raw is None:
            continue
        node = locate(file.root, ("probing",), want_key=True)
        if not _first(checker, file, node, "probing", origin):
            continue
        origin = _Origin(file.source.shown, position(node))
        try:
            model = ProbingModel.model_validate(raw)
        except ValidationError as exc:
            checker.validation(exc, file.source.shown, file.root, ("probing",), None, ProbingModel)
            continue
        channels = tuple(model.notify) if model.notify is not None else default_channels
        found = Probing(
            enabled=model.enabled,
            window=parse_window(model.window),
            window_text=model.window,
            distinct=model.distinct_criteria,
            channels=channels,
            action=model.then,
            file=file.source.shown,
            line=position(node).line,
        )
        if model.enabled and not channels:
            checker.add(
                "warning",
                file.source.shown,
                node,
                None,
                "probing: no channel (neither notify: here nor defaults: channels); suspected "
                "probing is only logged",
            )
    return found or Probing(channels=default_channels)


def _lint(
    checker: Checker,
    inbound: Sequence[InboundRule],
    inbound_nodes: Sequence[tuple[ParsedFile, Node]],
    outbound: Sequence[OutboundRule],
    outbound_nodes: Sequence[tuple[ParsedFile, Node]],
) -> None:
    for index, blockers in sorted(unreachable_inbound(inbound).items()):
        file, node = inbound_nodes[index]
        rule = inbound[index]
        if blockers:
            earlier = ", ".join(
                f"{inbound[i].name!r} ({inbound[i].file}:{inbound[i].line})"
                for i in sorted(blockers)
            )
            message = f"never applies: every query it matches is decided earlier by {earlier}"
        else:
            message = "never applies: it matches no query (its from: names no peer)"
        checker.add("warning", file.source.shown, node, rule.name, message)
    for index, earlier_index in sorted(redundant_outbound(outbound).items()):
        file, node = outbound_nodes[index]
        cover = outbound[earlier_index]
        checker.add(
            "warning",
            file.source.shown,
            node,
            outbound[index].name,
            f"redundant: {cover.name!r} ({cover.file}:{cover.line}) already allows "
            "everything this rule allows",
        )
