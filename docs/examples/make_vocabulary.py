"""Build docs/vocabulary.md's tables of names from the code: kinds, categories, subject, CLI."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from connector.cli import COMMANDS
from connector.cli.common import OldSpelling
from connector.cli.lazy import Lazy, LazyGroup
from connector.demo import demo_print
from connector.outbound.subject import Subject, subject_checks, subject_fields
from connector.records.categories import CATEGORIES
from connector.records.ftm import FTM_SCHEMATA, ftm_to_row
from connector.records.kinds.registry import KINDS
from connector.vocabulary import OLD_SPELLINGS, Category, wire_criteria, wire_record

BEGIN = "<!-- BEGIN GENERATED VOCABULARY (python docs/examples/make_vocabulary.py --write) -->"
END = "<!-- END GENERATED VOCABULARY -->"
DOC = Path(__file__).resolve().parent.parent / "vocabulary.md"

# FtM properties tried one by one on an entity of the category's schema: the row field each
# lands in is what the mapping (connector/records/ftm.py) does with it, read off its output.
_FTM_PROBES: Mapping[str, str] = {
    "number": "FA123456",
    "passportNumber": "C01X00T47",
    "idNumber": "T22000129",
    "country": "ua",
    "type": "PD",
    "givenName": "Erika",
    "surname": "Mustermann",
    "registrationNumber": "AB123CD",
    "vin": "1M8GDM9AXKP042788",
    "model": "Golf",
    "buildDate": "2019",
    "firstName": "Jan",
    "lastName": "Novak",
    "middleName": "Karel",
    "fatherName": "Petrovich",
    "name": "Ян Новак",
    "alias": "Honza",
    "previousName": "Jan Novy",
    "birthDate": "1980-05-12",
    "birthPlace": "Brno",
    "nationality": "cz",
    "citizenship": "sk",
    "gender": "male",
    "address": "Brno, Kounicova 1",
    "phone": "+420 123 456 789",
}
_FTM_BASE: Mapping[str, Mapping[str, list[str]]] = {
    "Passport": {"number": ["ZZ999999"]},
    "Vehicle": {"registrationNumber": ["ZZ999ZZ"], "country": ["de"]},
    "Person": {"name": ["Zora Zed"]},
}

# A subject with every field given, by values found again in the checks it becomes.
_MRZ = "P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<\nC01X00T478D<<6408125F2702283<<<<<<<<<<<<<<<4"
_SUBJECT = Subject(
    document_number="C01X00T47",
    document_country="DE",
    document_type="P",
    first_name="Erika",
    last_name="Mustermann",
    birth_date="1964",
    nationality="AT",
    plate="AB123CD",
    plate_country="FR",
    vin="1M8GDM9AXKP042788",
    dna_loci={"D8S1179": "13,14"},
    fingerprint=demo_print(0),
)


def _ftm_fields(category: Category) -> dict[str, list[str]]:
    """Row field → the FtM properties that fill it, for a category FtM entities import."""
    schema = FTM_SCHEMATA[category]
    base = _FTM_BASE[schema]
    settings: dict[str, Any] = {"status": "stolen", "warrant_country": "FR"}

    def row(props: Mapping[str, list[str]]) -> dict[str, Any]:
        entity = {"id": "probe", "schema": schema, "properties": dict(props)}
        return ftm_to_row(entity, category=category, **settings)

    found: dict[str, list[str]] = {}
    for prop, value in _FTM_PROBES.items():
        probed = row({**base, prop: [value]})
        for name, got in probed.items():
            # Where the value went (a country upper-cased, a date's year, within a list).
            held = value.casefold() in str(got).casefold() or value[:4] == str(got)
            if name != "id" and held and prop not in found.get(name, []):
                found.setdefault(name, []).append(prop)
    return found


def _subject_criteria() -> dict[str, list[str]]:
    """Subject field → `category.criterion` of each check it becomes."""
    given = {f.name: getattr(_SUBJECT, f.name) for f in subject_fields()}
    checks = [*subject_checks(_SUBJECT), *subject_checks(replace(_SUBJECT, mrz=_MRZ))]
    found: dict[str, list[str]] = {}
    for check in checks:
        for criterion, value in check.criteria.items():
            names = [n for n, v in given.items() if v == value]
            if criterion == "mrz":
                names = ["mrz"]
            for name in names:
                where = f"{check.category.value}.{criterion}"
                if where not in found.setdefault(name, []):
                    found[name].append(where)
    return found


def _commands() -> Iterator[tuple[str, click.Command]]:
    """Every command of `ncb-connector`, by its full name, imported."""

    def walk(prefix: str, entries: Mapping[str, Lazy | click.Command]) -> Iterator[Any]:
        for name in sorted(entries):
            entry = entries[name]
            if isinstance(entry, LazyGroup):
                yield from walk(f"{prefix}{name} ", entry.lazy)
                continue
            if isinstance(entry, Lazy):
                module, _, attribute = entry.target.partition(":")
                entry = getattr(importlib.import_module(module), attribute)
            yield f"{prefix}{name}", entry

    yield from walk("", COMMANDS)


def _code(names: list[str] | tuple[str, ...] | frozenset[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _wire(category: Category, name: str, *, criterion: bool, field: bool) -> str:
    """The name on the wire (protocol.md §6, §7.4), as the codec gives it: a criterion's in
    a query, a record field's in an answer's record; both when they differ."""
    as_criterion = next(iter(wire_criteria(category, {name: None}))) if criterion else None
    as_field = next(iter(wire_record(category, {name: None}))) if field else None
    if as_criterion and as_field and as_criterion != as_field:
        return f"criterion `{as_criterion}`, record `{as_field}`"
    wire = as_criterion or as_field
    return f"`{wire}`" if wire else ""


def _category_table(category: Category) -> list[str]:
    kind = KINDS[category]
    spec = CATEGORIES[category]
    row_model = getattr(kind, "row_model", None)
    row_fields = list(row_model.model_fields) if row_model is not None else []
    criteria = list(kind.compared) if kind.searchable else []
    searchable = kind.compared_fields() if kind.searchable else frozenset()
    ftm = _ftm_fields(category) if category in FTM_SCHEMATA else {}
    old = {new: o for o, new in OLD_SPELLINGS.get(category, {}).items()}
    names = [*spec.fields, *(n for n in row_fields if n not in spec.fields)]
    names += [n for n in criteria if n not in names]
    lines = [
        f"### `{category.value}`",
        "",
        "| name | import row | criterion | record field | `summary` | `search:` | FtM "
        "| old spelling | wire v1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        cells = [
            f"`{name}`",
            "✓" if name in row_fields else "",
            "✓" if name in criteria else "",
            "✓" if name in spec.fields else "",
            "✓" if name in spec.summary else "",
            "✓" if name in searchable else "",
            _code(ftm.get(name, [])),
            f"`{old[name]}`" if name in old else "",
            _wire(category, name, criterion=name in criteria, field=name in spec.fields),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def render() -> str:
    lines = [BEGIN, "", "## Records, checks and policies", ""]
    for category in Category:
        lines += _category_table(category)
    lines += [
        "## The local API's subject and `ncb-connector search`",
        "",
        "| subject field | `search` option | checks it becomes: category.criterion | old option |",
        "|---|---|---|---|",
    ]
    becomes = _subject_criteria()
    for f in subject_fields():
        old = f"`{f.old}`" if f.old else ""
        lines.append(f"| `{f.name}` | `{f.option}` | {_code(becomes.get(f.name, []))} | {old} |")
    lines += [
        "",
        "## Old option names still taken",
        "",
        "| command | option | old spelling |",
        "|---|---|---|",
    ]
    for name, command in _commands():
        options = {p.name: p for p in command.params if isinstance(p, click.Option)}
        for param in command.params:
            if isinstance(param, OldSpelling):
                today = options[param.dest].opts[0]
                lines.append(f"| `{name}` | `{today}` | `{param.opts[0]}` |")
    return "\n".join([*lines, "", END])


def splice(document: str, generated: str) -> str:
    start, end = document.index(BEGIN), document.index(END) + len(END)
    return document[:start] + generated + document[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--write",
        action="store_true",
        help=f"replace the generated section of {DOC} instead of printing it",
    )
    args = parser.parse_args(argv)
    generated = render()
    if args.write:
        DOC.write_text(splice(DOC.read_text(encoding="utf-8"), generated), encoding="utf-8")
    else:
        sys.stdout.write(generated + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
