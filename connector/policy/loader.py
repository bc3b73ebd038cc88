"""Reading a policy directory into one Policy, with every error and warning at its file position."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from connector.errors import PolicyError
from connector.policy.analysis import redundant_outbound, unreachable_inbound
from connector.policy.model import (
    InboundRule,
    Notify,
    OutboundRule,
    Policy,
    Rate,
    Watch,
    digest_sources,
)
from connector.policy.schema import (
    NAME_RE,
    DefaultsModel,
    FileModel,
    GroupMembers,
    GroupName,
    InboundModel,
    OutboundModel,
    WatchModel,
)
from connector.records.categories import CATEGORIES
from connector.settings.yamlfile import (
    Position,
    YamlSyntaxError,
    compose,
    locate,
    position,
    to_python,
)
from connector.vocabulary import (
    PERSON_CATEGORIES,
    AgencyKind,
    AnswerLevel,
    Category,
    Purpose,
)

__all__ = [
    "CheckReport",
    "Diagnostic",
    "PolicySource",
    "check_policy",
    "check_sources",
    "load_policy",
    "read_sources",
]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """One error or warning, at a 1-based line and column (0 and 0 when about a whole file)."""

    file: str
    line: int
    column: int
    rule: str | None
    message: str
    severity: Severity

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "rule": self.rule,
            "message": self.message,
            "severity": self.severity,
        }

    def __str__(self) -> str:
        where = self.file if self.line == 0 else f"{self.file}:{self.line}:{self.column}"
        rule = "" if self.rule is None else f"[{self.rule}] "
        return f"{where}: {self.severity}: {rule}{self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """The outcome of checking a policy: `policy` is None exactly when there are errors."""

    errors: tuple[Diagnostic, ...]
    warnings: tuple[Diagnostic, ...]
    policy: Policy | None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySource:
    """One policy file's bytes; `name` enters the digest, `path` is shown in diagnostics."""

    name: str
    data: bytes
    path: str = ""

    @property
    def shown(self) -> str:
        return self.path or self.name


def read_sources(directory: Path) -> tuple[list[PolicySource], list[Diagnostic]]:
    """The `*.yaml` files of a directory in name order, plus problems finding or reading them."""
    where = str(directory)
    problems: list[Diagnostic] = []

    def problem(message: str, severity: Severity = "error", file: str = where) -> None:
        problems.append(
            Diagnostic(file=file, line=0, column=0, rule=None, message=message, severity=severity)
        )

    if not directory.exists():
        problem("policy directory does not exist")
        return [], problems
    if not directory.is_dir():
        problem("not a directory; a policy is a directory of *.yaml files")
        return [], problems
    sources: list[PolicySource] = []
    for path in sorted(directory.iterdir(), key=lambda p: p.name):
        name = path.name
        if name.startswith("."):
            # Editors' lock and swap files live here; they are never policy.
            continue
        lower = name.lower()
        if not name.endswith(".yaml"):
            if lower.endswith((".yml", ".yaml")):
                # An error, not a warning: a file renamed to .yml would otherwise drop its
                # deny rules from a running node without a word, widening access.
                problem(
                    "only files named *.yaml are read: rename it to .yaml, or move it out "
                    "of the policy directory to take it out of the policy",
                    "error",
                    str(path),
                )
            continue
        if not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            problem(f"cannot read: {exc.strerror or exc}", file=str(path))
            continue
        sources.append(PolicySource(name=name, data=data, path=str(path)))
    if not sources and not any(p.severity == "error" for p in problems):
        problem(
            "no *.yaml file here: a policy needs at least one "
            "(`ncb-connector init` writes 00-default.yaml, which denies everything)"
        )
    return sources, problems


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
        errors=_in_order(errors),
        warnings=_in_order(warnings),
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


# --- checking ---------------------------------------------------------------------------

_GROUP_NAME: TypeAdapter[str] = TypeAdapter(GroupName)
_GROUP_MEMBERS: TypeAdapter[list[str]] = TypeAdapter(GroupMembers)

_ENUM_FIELDS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "categories": ("category", tuple(c.value for c in Category)),
    "category": ("category", tuple(c.value for c in Category)),
    "purposes": ("purpose", tuple(p.value for p in Purpose)),
    "agency_kinds": ("agency kind", tuple(k.value for k in AgencyKind)),
    "answer": ("answer level", tuple(a.value for a in AnswerLevel)),
    "notify": ("notify value", tuple(n.value for n in Notify)),
}

_SECTION_KEYS = ", ".join(f.alias or name for name, f in FileModel.model_fields.items())


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _did_you_mean(value: object, choices: Iterable[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind_of(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _message(error: Mapping[str, Any], model: type[BaseModel] | None) -> str:
    kind = error["type"]
    loc = [part for part in error["loc"] if part != "[key]"]
    names = [part for part in loc if isinstance(part, str)]
    key = names[-1] if names else ""
    value = error.get("input")
    ctx = error.get("ctx") or {}
    prefix = f"{key}: " if key else ""
    if kind == "extra_forbidden":
        allowed = _keys(model) if model is not None else []
        hint = _did_you_mean(key, allowed)
        return f"unknown key {key!r}{hint}; allowed here: {', '.join(allowed)}"
    if kind == "missing":
        return f"missing required key {key!r}"
    if kind == "enum":
        noun, choices = _ENUM_FIELDS.get(key, ("value", ()))
        if value is None:
            return f"{prefix}has no value; expected {ctx.get('expected', ', '.join(choices))}"
        return (
            f"{prefix}unknown {noun} {value!r}{_did_you_mean(value, choices)}; "
            f"expected {ctx.get('expected', ', '.join(choices))}"
        )
    if kind == "value_error":
        return f"{prefix}{ctx.get('error', error['msg'])}"
    if kind == "string_type":
        return f"{prefix}expected text, got {_kind_of(value)}"
    if kind == "list_type":
        return f"{prefix}expected a list, got {_kind_of(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{prefix}expected true or false, got {_kind_of(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{prefix}expected a mapping of keys to values, got {_kind_of(value)}"
    return f"{prefix}{error['msg']}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _File:
    """One parsed file: its node tree, and the sections whose shape is right."""

    source: PolicySource
    root: Node
    sections: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Origin:
    file: str
    position: Position

    def __str__(self) -> str:
        return f"{self.file}:{self.position.line}"


class _Checker:
    """Accumulates diagnostics while the files are checked; lives for one check only."""

    def __init__(self) -> None:
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    def add(
        self,
        severity: Severity,
        file: str,
        where: Position | Node | None,
        rule: str | None,
        message: str,
    ) -> None:
        if isinstance(where, Node):
            where = position(where)
        line, column = (0, 0) if where is None else (where.line, where.column)
        target = self.errors if severity == "error" else self.warnings
        target.append(
            Diagnostic(
                file=file, line=line, column=column, rule=rule, message=message, severity=severity
            )
        )

    def validation(
        self,
        exc: ValidationError,
        file: _File,
        prefix: tuple[str | int, ...],
        rule: str | None,
        model: type[BaseModel] | None,
        context: str = "",
    ) -> None:
        for error in exc.errors(include_url=False):
            loc = (*prefix, *error["loc"])
            node = locate(file.root, loc, want_key=error["type"] == "extra_forbidden")
            message = context + _message(error, model)
            self.add("error", file.source.shown, node, rule, message)


def _parse(source: PolicySource, checker: _Checker) -> _File | None:
    shown = source.shown
    try:
        text = source.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = source.data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        checker.add("error", shown, Position(line=line, column=column), None, "not UTF-8 text")
        return None
    try:
        root = compose(text)
    except YamlSyntaxError as exc:
        checker.add("error", shown, exc.position, None, exc.message)
        return None
    if root is None:
        return None  # only comments: a valid, empty contribution
    if not isinstance(root, MappingNode):
        checker.add(
            "error",
            shown,
            root,
            None,
            f"the top level must be a mapping with some of: {_SECTION_KEYS}",
        )
        return None
    data, problems = to_python(root)
    for problem in problems:
        rule = _rule_at(root, problem.position)
        checker.add("error", shown, problem.position, rule, problem.message)
    file = _File(source=source, root=root, sections={})
    try:
        FileModel.model_validate(data)
        bad: set[object] = set()
    except ValidationError as exc:
        checker.validation(exc, file, (), None, FileModel)
        bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
    return replace(
        file,
        sections={
            key: value
            for key, value in data.items()
            if key in FileModel.model_fields and key not in bad and value is not None
        },
    )


def _rule_at(root: MappingNode, where: Position) -> str | None:
    """The name of the rule or watch written around `where`, if it has one."""
    for key_node, section in root.value:
        if key_node.value not in ("inbound", "outbound", "watch"):
            continue
        if not isinstance(section, SequenceNode):
            continue
        for item in section.value:
            start, end = item.start_mark, item.end_mark
            inside = (
                (start.line, start.column)
                <= (where.line - 1, where.column - 1)
                < (
                    end.line,
                    end.column,
                )
            )
            if inside and isinstance(item, MappingNode):
                for name_key, name_value in item.value:
                    if name_key.value == "name" and isinstance(name_value, ScalarNode):
                        return str(name_value.value)
    return None


def check_sources(sources: Sequence[PolicySource]) -> CheckReport:
    """Check policy files, given in load order, as one policy."""
    checker = _Checker()
    files = [f for f in (_parse(s, checker) for s in sources) if f is not None]
    groups, broken = _groups(files, checker)
    channels = _defaults(files, checker)
    names: dict[str, _Origin] = {}
    inbound, inbound_nodes = _inbound(files, checker, groups, broken, channels, names)
    outbound, outbound_nodes = _outbound(files, checker, groups, broken, names)
    watches = _watches(files, checker, channels)
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
            files=tuple(s.name for s in sources),
        )
    return CheckReport(
        errors=_in_order(checker.errors), warnings=_in_order(checker.warnings), policy=policy
    )


def _in_order(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    # Paths share the directory and files are read in name order, so this is reading order.
    return tuple(sorted(diagnostics, key=lambda d: (d.file, d.line, d.column)))


def _groups(
    files: Sequence[_File], checker: _Checker
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
                checker.validation(exc, file, (*prefix, "[key]"), None, None)
            try:
                validated = _GROUP_MEMBERS.validate_python(members)
            except ValidationError as exc:
                ok = False
                checker.validation(exc, file, prefix, None, None, f"group {name!r}: ")
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


def _defaults(files: Sequence[_File], checker: _Checker) -> tuple[str, ...]:
    channels: tuple[str, ...] = ()
    origin: _Origin | None = None
    for file in files:
        raw = file.sections.get("defaults")
        if raw is None:
            continue
        try:
            model = DefaultsModel.model_validate(raw)
        except ValidationError as exc:
            checker.validation(exc, file, ("defaults",), None, DefaultsModel)
            continue
        if model.channels is None:
            continue
        node = locate(file.root, ("defaults", "channels"), want_key=True)
        if origin is not None:
            checker.add(
                "error",
                file.source.shown,
                node,
                None,
                f"defaults.channels is already set at {origin}; set it in one file only",
            )
            continue
        origin = _Origin(file.source.shown, position(node))
        channels = tuple(model.channels)
    return channels


def _label(raw: object, fallback: str) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("name"), str) and raw["name"].strip():
        return str(raw["name"])
    return fallback


def _claim_name(
    checker: _Checker,
    names: dict[str, _Origin],
    name: str,
    file: _File,
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
    checker: _Checker,
    file: _File,
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
                f"{key}: unknown group {group!r}{_did_you_mean(group, groups.keys() | broken)}",
            )
    return ok


def _check_redact(
    raw: dict[str, Any], checker: _Checker, file: _File, prefix: tuple[str | int, ...], rule: str
) -> bool:
    """Report every redacted name that is a field of none of the rule's categories."""
    values = {c.value for c in Category}
    listed = [Category(c) for _, c in _strings(raw.get("categories")) if c in values]
    categories = sorted(set(listed)) or list(Category)
    known = frozenset().union(*(CATEGORIES[c].fields for c in categories))
    scope = "of " + ", ".join(categories) if listed else "of any category"
    ok = True
    for index, name in _strings(raw.get("redact")):
        if name not in known:
            ok = False
            checker.add(
                "error",
                file.source.shown,
                locate(file.root, (*prefix, "redact", index)),
                rule,
                f"redact: {name!r} is not a field {scope}{_did_you_mean(name, known)}",
            )
    return ok


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
    files: Sequence[_File],
    checker: _Checker,
    groups: Mapping[str, frozenset[str]],
    broken: frozenset[str],
    default_channels: tuple[str, ...],
    names: dict[str, _Origin],
) -> tuple[list[InboundRule], list[tuple[_File, Node]]]:
    rules: list[InboundRule] = []
    nodes: list[tuple[_File, Node]] = []
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
                if label == raw.get("name"):
                    name_node = locate(file.root, (*prefix, "name"))
                    ok &= _claim_name(checker, names, label, file, name_node, "rule")
                ok &= _check_groups(raw, "from", groups, broken, checker, file, prefix, label)
                ok &= _check_redact(raw, checker, file, prefix, label)
            try:
                model = InboundModel.model_validate(raw)
            except ValidationError as exc:
                checker.validation(exc, file, prefix, label, InboundModel)
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
                notify=model.notify,
                channels=channels,
                rate=None if model.rate is None else Rate.parse(model.rate),
                file=shown,
                line=position(rule_node).line,
            )
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


def _outbound(
    files: Sequence[_File],
    checker: _Checker,
    groups: Mapping[str, frozenset[str]],
    broken: frozenset[str],
    names: dict[str, _Origin],
) -> tuple[list[OutboundRule], list[tuple[_File, Node]]]:
    rules: list[OutboundRule] = []
    nodes: list[tuple[_File, Node]] = []
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
                checker.validation(exc, file, prefix, label, OutboundModel)
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
    files: Sequence[_File], checker: _Checker, default_channels: tuple[str, ...]
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
                checker.validation(exc, file, prefix, label, WatchModel)
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


def _lint(
    checker: _Checker,
    inbound: Sequence[InboundRule],
    inbound_nodes: Sequence[tuple[_File, Node]],
    outbound: Sequence[OutboundRule],
    outbound_nodes: Sequence[tuple[_File, Node]],
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
