"""The one reader of admin-edited YAML: positions kept, duplicate keys refused, NO is Norway."""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from connector.errors import ConfigError, ConnectorError, FieldProblem, did_you_mean, field_problems

__all__ = [
    "Position",
    "Problem",
    "YamlSyntaxError",
    "compose",
    "load_yaml_model",
    "locate",
    "position",
    "to_python",
]

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader whose only booleans are true/false (YAML 1.2).

    YAML 1.1 reads `NO` as false, which would turn Norway into a boolean in a list of
    countries; `yes`/`no`/`on`/`off` therefore stay strings here.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


# libyaml's parser, when PyYAML has it, with the same resolvers: ten times faster, which a
# node reloading a trust store of ~200 peers feels. The two parsers build the same trees
# with the same positions except around tabs, tags, complex keys, block scalars,
# directives, YAML 1.1 line breaks and byte-order marks (libyaml accepts some texts there
# that PyYAML refuses, and reads `key: !` differently): a text with any of those
# characters, or one libyaml refuses, is read by PyYAML, whose messages admins see.
_FastLoader: type[Any] | None = None
if hasattr(yaml, "CSafeLoader"):

    class _CLoader(yaml.CSafeLoader):
        yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers

    _FastLoader = _CLoader
_PYYAML_ONLY = re.compile("[\t!?|>%\x85\u2028\u2029\ufeff]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """A 1-based line and column in a file."""

    line: int
    column: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """Something wrong in the YAML itself, found while converting nodes to values."""

    position: Position
    message: str


class YamlSyntaxError(Exception):
    """The text is not YAML; carries where the parser gave up."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def position(node: Node) -> Position:
    return Position(line=node.start_mark.line + 1, column=node.start_mark.column + 1)


def compose(text: str) -> Node | None:
    """The node tree of a one-document YAML text; None for an empty or comment-only text."""
    root: Node | None
    if _FastLoader is not None and not _PYYAML_ONLY.search(text):
        try:
            root = yaml.compose(text, Loader=_FastLoader)
        except yaml.YAMLError:
            root = _compose(text)
    else:
        root = _compose(text)
    if isinstance(root, ScalarNode) and root.tag == _NULL:
        return None  # a bare `---` or `~`: an empty document
    return root


def _compose(text: str) -> Node | None:
    """PyYAML's own parser: the reference, and the one whose errors are reported."""
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (
            Position(line=mark.line + 1, column=mark.column + 1)
            if mark is not None
            else Position(line=1, column=1)
        )
        message = exc.problem or exc.context or "not YAML"
        context = exc.context_mark
        if exc.problem and exc.context and context is not None:
            started = f"line {context.line + 1}, column {context.column + 1}"
            message = f"{exc.context} (from {started}): {exc.problem}"
        if exc.context == "while scanning an alias":
            message += '; a bare * starts a YAML alias: write "*" in quotes for every peer'
        raise YamlSyntaxError(f"YAML syntax: {message}", where) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML syntax: {exc}", Position(line=1, column=1)) from exc


def to_python(node: Node) -> tuple[Any, list[Problem]]:
    """Plain values for a node tree, with every duplicate key and non-string key reported.

    Where a key repeats, the last value is kept (as PyYAML does) so that validation can go on
    and report further errors; the duplicate itself is always an error.
    """
    problems: list[Problem] = []
    return _convert(node, problems, frozenset()), problems


def _convert(node: Node, problems: list[Problem], active: frozenset[int]) -> Any:
    if id(node) in active:
        problems.append(Problem(position=position(node), message="recursive YAML alias"))
        return None
    if isinstance(node, ScalarNode):
        return _scalar(node)
    inner = active | {id(node)}
    if isinstance(node, SequenceNode):
        return [_convert(item, problems, inner) for item in node.value]
    if isinstance(node, MappingNode):
        result: dict[str, Any] = {}
        first_seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                problems.append(
                    Problem(
                        position=position(key_node),
                        message="YAML merge keys (<<) are not supported; write the keys out",
                    )
                )
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag == _NULL:
                problems.append(
                    Problem(position=position(key_node), message="a key must be a plain string")
                )
                continue
            key = str(key_node.value)
            if key in first_seen:
                first = position(first_seen[key])
                problems.append(
                    Problem(
                        position=position(key_node),
                        message=f"duplicate key {key!r} (first at line {first.line}); "
                        "YAML would silently keep only the last one",
                    )
                )
            else:
                first_seen[key] = key_node
            result[key] = _convert(value_node, problems, inner)
        return result
    return None  # pragma: no cover - PyYAML has only the three node kinds


def _scalar(node: ScalarNode) -> Any:
    value = str(node.value)
    if node.tag == _NULL:
        return None
    if node.tag == _BOOL:
        return value.lower() == "true"
    if node.tag == _INT:
        try:
            return int(value.replace("_", ""), 0)
        except ValueError:
            # YAML 1.1 oddities (sexagesimal, leading-zero octal) stay text and fail
            # validation with the admin's own spelling in the message.
            return value
    if node.tag == _FLOAT:
        try:
            return float(value.replace("_", ""))
        except ValueError:
            return value
    return value


def _pair(node: MappingNode, key: str) -> tuple[Node, Node] | None:
    # The last occurrence wins, as in to_python.
    for key_node, value_node in reversed(node.value):
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def locate(root: Node, loc: Sequence[str | int], *, want_key: bool = False) -> Node:
    """The node a validation error's location points at, or its nearest existing ancestor.

    With `want_key`, a location ending at a mapping key gives the key's node (where an
    unknown key is written) rather than its value. Elements that match nothing, such as
    pydantic's union-member tags or an index into a scalar that validation read as a
    one-item list, are skipped.
    """
    node = root
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, MappingNode) and isinstance(part, str):
            pair = _pair(node, part)
            if pair is None:
                continue
            key_node, value_node = pair
            if (last and want_key) or (not last and loc[index + 1] == "[key]"):
                return key_node
            node = value_node
        elif (
            isinstance(node, SequenceNode)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(node.value)
        ):
            node = node.value[part]
    return node


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(
    path: Path,
    model: type[M],
    *,
    extra: Mapping[str, Any] | None = None,
    error: type[ConnectorError] = ConfigError,
    empty_ok: bool = False,
) -> M:
    """A YAML file an admin edits, validated by `model`; every problem is reported as
    file:line:column: key: reason in one `error`. `extra` keys are supplied by us, never
    taken from the file. With `empty_ok`, an empty or comment-only file is the model's
    defaults rather than an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise error(f"cannot read {path}: {reason}", file=str(path)) from exc
    try:
        root = compose(text)
    except YamlSyntaxError as exc:
        raise error(
            f"{path}:{exc.position.line}:{exc.position.column}: {exc.message}", file=str(path)
        ) from exc
    if root is None:
        if not empty_ok:
            raise error(f"{path}: the file is empty", file=str(path))
        root = compose("{}")  # an empty mapping at 1:1, where any error about it is shown
        assert root is not None
    data, problems = to_python(root)
    found = [f"{path}:{p.position.line}:{p.position.column}: {p.message}" for p in problems]
    if not isinstance(data, dict):
        found.append(f"{path}:1:1: the top level must be a mapping")
    else:
        for key in extra or {}:
            if key in data:
                where = position(locate(root, [key], want_key=True))
                found.append(f"{path}:{where.line}:{where.column}: {key}: unknown key")
    if found:
        raise error("; ".join(found), file=str(path), errors=found)
    try:
        return model.model_validate({**data, **(extra or {})})
    except ValidationError as exc:
        for problem in field_problems(exc):
            node = locate(root, problem.loc, want_key=problem.type == "extra_forbidden")
            where = position(node)
            key, reason = _worded(problem, model, internal=set(extra or {}))
            label = f"{key}: " if key else ""
            found.append(f"{path}:{where.line}:{where.column}: {label}{reason}")
        raise error("; ".join(found), file=str(path), errors=found) from exc


def _worded(
    problem: FieldProblem, model: type[BaseModel], *, internal: set[str]
) -> tuple[str, str]:
    """(where, why) in an admin's words: an unknown key or value gets the closest allowed
    one and the list of what is allowed there, as the policy's diagnostics do."""
    loc = problem.loc
    if problem.type in ("extra_forbidden", "missing") and loc:
        here, shown = _walk(model, loc[:-1])
        where = ".".join(str(p) for p in shown)
        if problem.type == "missing":
            return where, f"missing required key {loc[-1]!r}"
        allowed = [k for k in _keys(here) if k not in internal]
        listed = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return where, f"unknown key {loc[-1]!r}{did_you_mean(loc[-1], allowed)}{listed}"
    expected = problem.ctx.get("expected") or problem.ctx.get("expected_tags") or ""
    value = problem.ctx.get("tag", problem.input)
    if problem.type in ("literal_error", "enum", "union_tag_invalid"):
        choices = re.findall(r"'([^']*)'", str(expected))
        return problem.field, problem.reason + did_you_mean(value, choices)
    return problem.field, problem.reason


def _walk(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[list[Any], list[str | int]]:
    """The types `loc` leads to, and `loc` as the file shows it (without union tags)."""
    here: list[Any] = [model]
    shown: list[str | int] = []
    for part in loc:
        here, tag = _step(here, part)
        if not tag:
            shown.append(part)
    return here, shown


def _keys(here: list[Any]) -> list[str]:
    keys: dict[str, None] = {}
    for tp in here:
        for m in _models(tp):
            keys.update((f.alias or name, None) for name, f in m.model_fields.items())
    return list(keys)


def _members(tp: Any) -> list[Any]:
    """A type without its Annotated metadata, a union as its members."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        return [m for arg in get_args(tp) for m in _members(arg)]
    return [tp]


def _models(tp: Any) -> list[type[BaseModel]]:
    return [m for m in _members(tp) if isinstance(m, type) and issubclass(m, BaseModel)]


def _step(here: list[Any], part: str | int) -> tuple[list[Any], bool]:
    """Where one part of a loc leads from `here`; True when the part was a union's tag."""
    members = [m for tp in here for m in _members(tp)]
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    by_field = [m.model_fields[part].annotation for m in models if part in m.model_fields]
    if by_field:
        return by_field, False
    # A tagged union's loc names the tag (`webhook`): the member whose literal holds it.
    tagged = [
        m
        for m in models
        if any(
            part in get_args(f.annotation)
            for f in m.model_fields.values()
            if get_origin(f.annotation) is Literal
        )
    ]
    if tagged:
        return tagged, True
    out: list[Any] = []
    for m in members:
        origin, args = get_origin(m), get_args(m)
        if origin in (dict, Mapping) and len(args) == 2:
            out.append(args[1])
        elif origin in (list, tuple, Sequence) and args and isinstance(part, int):
            out.append(args[0])
    return out, False
