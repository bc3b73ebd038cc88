"""Reading a policy directory: its *.yaml files in name order, and the YAML of each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from connector.policy.diagnostics import Checker, Diagnostic, Severity
from connector.policy.schema import FileModel
from connector.settings.yamlfile import Position, YamlSyntaxError, compose, to_python

__all__ = ["ParsedFile", "PolicySource", "parse_source", "read_sources"]


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


_SECTION_KEYS = ", ".join(f.alias or name for name, f in FileModel.model_fields.items())


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedFile:
    """One parsed file: its node tree, and the sections whose shape is right."""

    source: PolicySource
    root: Node
    sections: Mapping[str, Any]


def parse_source(source: PolicySource, checker: Checker) -> ParsedFile | None:
    """One file's YAML with its sections' outline checked; None when nothing more to check."""
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
    file = ParsedFile(source=source, root=root, sections={})
    try:
        FileModel.model_validate(data)
        bad: set[object] = set()
    except ValidationError as exc:
        checker.validation(exc, file.source.shown, file.root, (), None, FileModel)
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
