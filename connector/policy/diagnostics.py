"""Policy diagnostics: errors and warnings at a file, line and rule, in the admin's words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ValidationError
from yaml.nodes import Node

from connector.errors import FieldProblem, did_you_mean, field_problems
from connector.policy.model import Notify, Policy, ProbingAction
from connector.settings.yamlfile import Position, locate, position
from connector.vocabulary import AgencyKind, AnswerLevel, Category, Purpose

__all__ = ["CheckReport", "Checker", "Diagnostic", "Severity", "did_you_mean", "in_order"]

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
        return self.located(severity=True)

    def located(self, *, severity: bool) -> str:
        """`file:line:column: [rule] message`, with the severity after the place if asked."""
        where = self.file if self.line == 0 else f"{self.file}:{self.line}:{self.column}"
        rule = "" if self.rule is None else f"[{self.rule}] "
        said = f"{self.severity}: " if severity else ""
        return f"{where}: {said}{rule}{self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """The outcome of checking a policy: `policy` is None exactly when there are errors."""

    errors: tuple[Diagnostic, ...]
    warnings: tuple[Diagnostic, ...]
    policy: Policy | None

    @property
    def ok(self) -> bool:
        return not self.errors


_ENUM_FIELDS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "categories": ("category", tuple(c.value for c in Category)),
    "category": ("category", tuple(c.value for c in Category)),
    "purposes": ("purpose", tuple(p.value for p in Purpose)),
    "agency_kinds": ("agency kind", tuple(k.value for k in AgencyKind)),
    "answer": ("answer level", tuple(a.value for a in AnswerLevel)),
    "notify": ("notify value", tuple(n.value for n in Notify)),
    "then": ("action", tuple(a.value for a in ProbingAction)),
}


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


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


def _message(error: FieldProblem, model: type[BaseModel] | None) -> str:
    kind = error.type
    loc = [part for part in error.loc if part != "[key]"]
    names = [part for part in loc if isinstance(part, str)]
    key = names[-1] if names else ""
    value = error.input
    ctx = error.ctx
    prefix = f"{key}: " if key else ""
    if kind == "extra_forbidden":
        allowed = _keys(model) if model is not None else []
        hint = did_you_mean(key, allowed)
        return f"unknown key {key!r}{hint}; allowed here: {', '.join(allowed)}"
    if kind == "missing":
        return f"missing required key {key!r}"
    if kind == "enum":
        noun, choices = _ENUM_FIELDS.get(key, ("value", ()))
        if value is None:
            return f"{prefix}has no value; expected {ctx.get('expected', ', '.join(choices))}"
        return (
            f"{prefix}unknown {noun} {value!r}{did_you_mean(value, choices)}; "
            f"expected {ctx.get('expected', ', '.join(choices))}"
        )
    if kind == "string_type":
        return f"{prefix}expected text, got {_kind_of(value)}"
    if kind == "list_type":
        return f"{prefix}expected a list, got {_kind_of(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{prefix}expected true or false, got {_kind_of(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{prefix}expected a mapping of keys to values, got {_kind_of(value)}"
    return f"{prefix}{error.reason}"


class Checker:
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
        file: str,
        root: Node,
        prefix: tuple[str | int, ...],
        rule: str | None,
        model: type[BaseModel] | None,
        context: str = "",
    ) -> None:
        for error in field_problems(exc):
            loc = (*prefix, *error.loc)
            node = locate(root, loc, want_key=error.type == "extra_forbidden")
            message = context + _message(error, model)
            self.add("error", file, node, rule, message)


def in_order(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    # Paths share the directory and files are read in name order, so this is reading order.
    return tuple(sorted(diagnostics, key=lambda d: (d.file, d.line, d.column)))
