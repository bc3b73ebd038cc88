"""`ncb-connector policy`: checking, explaining, tabulating and comparing the access policy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from connector.cli.common import (
    _fail,
    _json,
    config_option,
    enum_values,
    err,
    handles_errors,
    json_option,
    old_spelling,
    out,
)
from connector.cli.render import fit
from connector.settings.config import load_settings
from connector.vocabulary import AgencyKind, Category, Purpose, is_node_id, node_id_problem

if TYPE_CHECKING:
    from connector.policy import Policy


@click.command("check")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Exit 2 when there are warnings.")
@config_option
@json_option
@handles_errors
def policy_check(directory: Path | None, strict: bool, config_path: Path, as_json: bool) -> None:
    """Validate a policy directory: every error with file, line and rule name (with the
    config, also that every notification channel it names is defined)."""
    from connector.node.check import check_node_policy

    channels: set[str] | None = None
    if directory is None:
        settings = load_settings(config_path)
        directory = settings.path(settings.policy_dir)
        channels = set(settings.notifications.channels)
    checked = check_node_policy(directory, channels)
    report = checked.report
    if as_json:
        _json(
            {
                "ok": not checked.errors,
                "directory": str(directory),
                "errors": [d.as_dict() for d in report.errors],
                "warnings": [d.as_dict() for d in report.warnings],
                "unknown_channels": list(checked.unknown_channels),
                "inbound_rules": len(report.policy.inbound) if report.policy else None,
                "outbound_rules": len(report.policy.outbound) if report.policy else None,
                "digest": report.policy.digest if report.policy and not checked.errors else None,
            }
        )
        if checked.errors:
            raise SystemExit(1)
        if strict and report.warnings:
            raise SystemExit(2)
        return
    for d in report.errors:
        err.print(str(d), soft_wrap=True, markup=False)
    for d in report.warnings:
        err.print(str(d), soft_wrap=True, markup=False)
    if checked.unknown_channels:
        err.print(
            f"{directory}: the policy names notification channel(s) "
            f"{', '.join(checked.unknown_channels)} that connector.yaml does not define under "
            "notifications.channels",
            soft_wrap=True,
            markup=False,
        )
    if checked.errors:
        err.print(
            f"{checked.errors} error(s), {len(report.warnings)} warning(s); "
            "a running node keeps its current policy"
        )
        raise SystemExit(1)
    assert report.policy is not None
    out.print(
        f"ok: {len(report.policy.inbound)} inbound, {len(report.policy.outbound)} outbound "
        f"rule(s), {len(report.warnings)} warning(s), {report.policy.digest}"
    )
    if strict and report.warnings:
        raise SystemExit(2)


def _policy_dir(directory: Path | None, config_path: Path) -> Path:
    if directory is not None:
        return directory
    settings = load_settings(config_path)
    return settings.path(settings.policy_dir)


def _load_policy_or_fail(directory: Path) -> Policy:
    from connector.policy import check_policy

    report = check_policy(directory)
    if report.errors:
        for d in report.errors:
            err.print(str(d), soft_wrap=True, markup=False)
        _fail(f"{directory}: the policy has {len(report.errors)} error(s)", 1)
    assert report.policy is not None
    return report.policy


def _peer_id_or_fail(text: str) -> str:
    peer = text.strip().upper()
    if not is_node_id(peer):
        _fail(node_id_problem(text.strip(), groups_allowed=False))
    return peer


@click.command("explain")
@click.option("--peer", "peer", help="The asking node, e.g. DE.  [required]")
@old_spelling("--from", "peer")
@click.option("--agency-kind", required=True, type=click.Choice(enum_values(AgencyKind)))
@click.option("--purpose", required=True, type=click.Choice(enum_values(Purpose)))
@click.option("--category", required=True, type=click.Choice(enum_values(Category)))
@click.option("--case", "has_case", is_flag=True, help="The query carries a case reference.")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
@config_option
@handles_errors
def policy_explain(
    peer: str | None,
    agency_kind: str,
    purpose: str,
    category: str,
    has_case: bool,
    directory: Path | None,
    as_json: bool,
    config_path: Path,
) -> None:
    """Which rule decides a query, the level, the fields a peer receives and those redacted."""
    from connector.policy import explain

    if not peer:  # not `required`: its old spelling, --from, gives it too
        raise click.MissingParameter(param_hint="'--peer'", param_type="option")
    loaded = _load_policy_or_fail(_policy_dir(directory, config_path))
    peer = _peer_id_or_fail(peer)
    ex = explain(
        loaded,
        peer=peer,
        agency_kind=AgencyKind(agency_kind),
        purpose=Purpose(purpose),
        category=Category(category),
        has_case=has_case,
    )
    if as_json:
        _json(
            {
                "rule": ex.rule,
                "file": ex.file,
                "line": ex.line,
                "level": ex.level.value,
                "fields": sorted(ex.fields),
                "redacted": sorted(ex.redacted),
                "searched": sorted(ex.decision.searched),
                "unused_criteria": sorted(ex.decision.unused),
                "reason": ex.decision.reason,
                "skipped": [
                    {"rule": s.rule, "file": s.file, "line": s.line, "why": s.why}
                    for s in ex.skipped
                ],
            }
        )
        return
    for line in ex.lines():
        out.print(line, markup=False, soft_wrap=True)


@click.command("matrix")
@click.option(
    "--peer",
    "peers",
    multiple=True,
    help="Peers to show (default: every peer the policy names, and * for any other).",
)
@old_spelling("--from", "peers", multiple=True)
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default=None,
    help="Default: a table on a terminal, CSV otherwise.",
)
@config_option
@handles_errors
def policy_matrix(
    peers: tuple[str, ...], directory: Path | None, fmt: str | None, config_path: Path
) -> None:
    """Who sees what: peers × categories → the most each can get (* = depends on the query)."""
    from connector.policy import matrix, peer_universe

    loaded = _load_policy_or_fail(_policy_dir(directory, config_path))
    chosen = tuple(p if p == "*" else _peer_id_or_fail(p) for p in peers) or peer_universe(loaded)
    rows = matrix(loaded, peers=chosen)
    fmt = fmt or ("table" if out.is_terminal else "csv")
    if fmt == "json":
        _json(
            [
                {
                    "peer": r.peer,
                    "category": r.category.value,
                    "level": r.level.value,
                    "rule": r.rule,
                    "fields": sorted(r.fields),
                    "conditional": r.conditional,
                }
                for r in rows
            ]
        )
        return
    cells = {(r.peer, r.category): r.level.value + ("*" if r.conditional else "") for r in rows}
    if fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(["peer", *(c.value for c in Category)])
        for peer in chosen:
            writer.writerow([peer, *(cells[(peer, c)] for c in Category)])
        return
    table = Table(
        "peer",
        *(c.value for c in Category),
        caption="* the level depends on agency kind, purpose or a case reference",
    )
    for peer in chosen:
        table.add_row(peer, *(cells[(peer, c)] for c in Category))
    out.print(table)


@click.command("diff")
@click.argument("old_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("new_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def policy_diff(old_dir: Path, new_dir: Path, as_json: bool) -> None:
    """Every (peer, category, agency kind, purpose) whose outcome changes: read before reload."""
    from connector.policy import diff, peer_universe

    old, new = _load_policy_or_fail(old_dir), _load_policy_or_fail(new_dir)
    changes = diff(old, new, peers=peer_universe(old, new))
    if as_json:
        _json(
            [
                {
                    "peer": c.peer,
                    "category": c.category.value,
                    "agency_kind": c.agency_kind.value,
                    "purpose": c.purpose.value,
                    "case": c.has_case,
                    "changed": list(c.changed),
                    "old": {
                        "level": c.old.level.value,
                        "rule": c.old.rule,
                        "fields": sorted(c.old.fields),
                    },
                    "new": {
                        "level": c.new.level.value,
                        "rule": c.new.rule,
                        "fields": sorted(c.new.fields),
                    },
                }
                for c in changes
            ]
        )
        raise SystemExit(1 if changes else 0)
    if not changes:
        out.print("no query's outcome changes")
        return
    table = Table("peer", "category", "agency kind", "purpose", "case", "old", "new", "changed")
    for c in changes:
        table.add_row(
            c.peer,
            c.category.value,
            c.agency_kind.value,
            c.purpose.value,
            "yes" if c.has_case else "no",
            f"{c.old.level.value} ({c.old.rule or 'default deny'})",
            f"{c.new.level.value} ({c.new.rule or 'default deny'})",
            ", ".join(c.changed),
        )
    out.print(fit(table, out))
    out.print(f"{len(changes)} outcome(s) change")
    raise SystemExit(1)
