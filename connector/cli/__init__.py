"""`ncb-connector …`: parses the command line, calls the connector, prints the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from connector.errors import ConnectorError, ImportFileError, OutboundDenied, PeerError
from connector.logs import configure_logging
from connector.records.kinds.registry import KINDS
from connector.settings.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])

_HELD = sorted(c.value for c in KINDS)  # the categories this node stores and searches


# emoji=False: ":CD:" inside a fingerprint must not become a picture of a disc.
def _console(*, stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Piped output is for grep and scripts: a table's row stays on one line, not wrapped
    # at the 80 columns rich assumes without a terminal.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 240
    return Console(stderr=stderr, highlight=False, emoji=False, width=width)


out = _console(stderr=False)
err = _console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise SystemExit(code)


def handles_errors(fn: F) -> F:
    """Known failures print one clear line and exit non-zero; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConnectorError as exc:
            _fail(exc.detail)
        except SQLAlchemyError as exc:
            # Busy or damaged databases: say which, without the driver's quoted rows.
            orig = getattr(exc, "orig", None)
            text = str(orig or type(exc).__name__)
            hint = (
                " (is another command or the node holding it?)"
                if "locked" in text or "busy" in text.lower()
                else ""
            )
            _fail(f"database error: {text}{hint}")
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def config_option(fn: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        envvar=CONFIG_ENV,
        default=DEFAULT_CONFIG_PATH,
        show_default=True,
        show_envvar=True,
        help="The node's connector.yaml.",
    )(fn)


def _settings(config_path: Path, *, service: bool = False) -> Settings:
    """Settings, with logging as configured for the service, or warnings only for a
    command an admin types (its outcome is printed; info events would only be noise)."""
    settings = load_settings(config_path)
    configure_logging(
        fmt=settings.logging.format, level=settings.logging.level if service else "warning"
    )
    return settings


def _json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ncb-connector")
def main() -> None:
    """A National Central Bureau's connector: answers peers' signed queries under the NCB's
    policy, logs every enquiry, and asks peers on behalf of national agencies."""
    configure_logging(fmt="auto", level="warning")


# --- init, run, config, keys -------------------------------------------------------------------


@main.command()
@click.option("--node", required=True, help="Node id: ISO 3166-1 alpha-2, e.g. FR or FR-2.")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Peer listener address.")
@click.option("--peer-port", default=8443, show_default=True, type=click.IntRange(0, 65535))
@click.option("--local-port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the databases live (e.g. /var/lib/ncb-connector); default: --dir.",
)
@handles_errors
def init(
    node: str, directory: Path, host: str, peer_port: int, local_port: int, state_dir: Path | None
) -> None:
    """Create a node: config, Ed25519 key, TLS certificate, empty peers, default-deny policy."""
    from connector.node.init import init_node

    paths = init_node(
        directory,
        node=node,
        host=host,
        peer_port=peer_port,
        local_port=local_port,
        state_dir=state_dir,
    )
    out.print(f"Node [bold]{node}[/] created in {directory}")
    out.print(
        f"  config    {paths.config}\n  key       {paths.key} (mode 0600)\n"
        f"  tls       {paths.tls_cert}\n  peers     {paths.peers}\n"
        f"  policies  {paths.policies}/ (default deny)"
    )
    out.print(f"Next: ncb-connector keys show --config {paths.config}")


@main.command()
@config_option
@handles_errors
def run(config_path: Path) -> None:
    """Serve the peer API and the local API until SIGTERM (SIGHUP reloads)."""
    from connector.node.sdnotify import SystemdNotifier
    from connector.node.service import Node, serve

    node = Node.from_settings(_settings(config_path, service=True))
    asyncio.run(serve(node, notifier=SystemdNotifier.from_env(os.environ)))


@main.group()
def config() -> None:
    """The node's configuration."""


@config.command("check")
@config_option
@handles_errors
def config_check(config_path: Path) -> None:
    """Validate connector.yaml, the key files, peers.yaml, sources.yaml and the policy
    directory."""
    from connector.node.service import Node
    from connector.sources.model import load_sources

    settings = load_settings(config_path)
    configure_logging(fmt="auto", level="critical")  # the outcome is printed, not logged
    node = Node.from_settings(settings)
    node.load_live()
    node.ssl_context()
    sources = load_sources(settings.path(settings.sources_file)).sources
    out.print(
        f"ok: node {settings.node}, {len(node.live.trust.peers)} peer(s), "
        f"{len(sources)} source(s), policy {node.live.policy.digest}"
    )


@main.group()
def keys() -> None:
    """The node's keys."""


@keys.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def keys_show(config_path: Path, as_json: bool) -> None:
    """Print the public JWK, its RFC 7638 thumbprint and the TLS certificate fingerprint."""
    from connector.node.service import Node

    node = Node.from_settings(load_settings(config_path))
    jwk = node.signer.public.jwk()
    if as_json:
        _json(
            {
                "node": node.settings.node,
                "jwk": jwk,
                "thumbprint": node.signer.kid,
                "tls_fingerprint": node.tls_fingerprint,
                "url": node.settings.peer_url,
            }
        )
        return
    # Plain lines, never wrapped or styled: these values are read out over the telephone.
    for label, value in (
        ("node", node.settings.node),
        ("url", node.settings.peer_url),
        ("jwk", orjson.dumps(jwk).decode()),
        ("thumbprint", node.signer.kid),
        ("tls fingerprint", node.tls_fingerprint),
    ):
        click.echo(f"{label:<17}{value}")


# --- peers -------------------------------------------------------------------------------------


@main.group()
def peers() -> None:
    """The trust store (peers.yaml)."""


@peers.command("add")
@click.argument("peer_id")
@click.option("--url", required=True)
@click.option("--key", "jwk_text", help="The peer's public JWK (JSON).")
@click.option("--fetch", is_flag=True, help="Read the key and fingerprint from the peer.")
@click.option("--tls-fingerprint", help="SHA-256 of the peer's TLS certificate.")
@click.option("--insecure", is_flag=True, help="Plain HTTP (tests and demos only).")
@click.option("--yes", is_flag=True, help="Pin what --fetch found without asking.")
@config_option
@handles_errors
def peers_add(
    peer_id: str,
    url: str,
    jwk_text: str | None,
    fetch: bool,
    tls_fingerprint: str | None,
    insecure: bool,
    yes: bool,
    config_path: Path,
) -> None:
    """Trust a peer: pin its key and TLS fingerprint."""
    from connector.peers.admin import add_peer

    settings = load_settings(config_path)
    peer_id = peer_id.upper()
    if peer_id == settings.node:
        _fail(f"{peer_id} is this node itself")
    if bool(jwk_text) == fetch:
        _fail("give exactly one of --key JWK or --fetch")

    def confirm(summary: str) -> bool:
        click.echo(summary)
        return yes or click.confirm("Pin this key and fingerprint?", default=False)

    peer = add_peer(
        settings.path(settings.peers_file),
        peer_id=peer_id,
        url=url,
        jwk_text=jwk_text,
        fetch=fetch,
        tls_fingerprint=tls_fingerprint,
        insecure=insecure,
        confirm=confirm,
    )
    if peer is None:
        _fail("not pinned", 1)
        return
    click.echo(
        f"peer {peer.id} added: key {peer.keys[0].key.kid}, "
        f"tls {peer.tls_fingerprint or 'none (insecure)'}"
    )
    from connector.policy import check_policy
    from connector.policy.analysis import rules_by_country

    report = check_policy(settings.path(settings.policy_dir))
    inherited = rules_by_country(report.policy, peer.id) if report.policy else []
    if inherited:
        click.echo(
            f"note: {peer.id} is a node of {peer.id[:2]}; these rules name "
            f"{peer.id[:2]} and so apply to it too: {', '.join(inherited)}"
        )
    out.print("A running node picks this up within its reload interval or on SIGHUP.")


@peers.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def peers_list(config_path: Path, as_json: bool) -> None:
    """List trusted peers."""
    from connector.peers.trust import load_trust_store

    settings = load_settings(config_path)
    store = load_trust_store(settings.path(settings.peers_file))
    peers_sorted = sorted(store.peers.values(), key=lambda p: p.id)
    if as_json:
        _json(
            [
                {
                    "id": p.id,
                    "url": p.url,
                    "keys": [k.key.kid for k in p.keys],
                    "tls_fingerprint": p.tls_fingerprint,
                    "insecure": p.insecure,
                }
                for p in peers_sorted
            ]
        )
        return
    table = Table("id", "url", "key thumbprint(s)", "tls fingerprint")
    for column in table.columns:
        column.overflow = "fold"  # never an ellipsis in a value an admin compares
    for p in peers_sorted:
        fp = p.tls_fingerprint
        table.add_row(
            p.id,
            p.url,
            "\n".join(k.key.kid for k in p.keys),
            fp if fp else "[yellow]insecure (plain http)[/]",
        )
    out.print(table if peers_sorted else "no peers")


@peers.command("remove")
@click.argument("peer_id")
@config_option
@handles_errors
def peers_remove(peer_id: str, config_path: Path) -> None:
    """Stop trusting a peer."""
    from connector.peers.admin import remove_peer

    settings = load_settings(config_path)
    peer_id = peer_id.upper()
    if not remove_peer(settings.path(settings.peers_file), peer_id):
        _fail(f"{peer_id} is not in the trust store", 1)
    out.print(f"peer {peer_id} removed")


@peers.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def peers_status(config_path: Path, as_json: bool) -> None:
    """Each peer's last health check by the running node: up or down, latency, key, TLS."""
    from connector.enquiries.entry import utc_iso
    from connector.peers.health import load_health

    settings = load_settings(config_path)
    written_at, rows = load_health(settings.state_path(settings.federation.health_file))
    if as_json:
        _json(
            {
                "written_at": utc_iso(written_at) if written_at else None,
                "peers": [_health_dict(r) for r in rows],
            }
        )
        return
    if written_at is None:
        _fail(
            "no health checks yet: is the node running? (it checks every "
            f"{settings.federation.health_interval_s:g} s)",
            1,
        )
        return
    table = Table(
        "peer",
        "state",
        "latency",
        "key",
        "tls",
        "key expires",
        "last up",
        "breaker",
        "problem",
        title=f"peer health as of {utc_iso(written_at)[:19].replace('T', ' ')} UTC",
    )
    for column in table.columns:
        column.overflow = "fold"

    def yes_no(v: bool | None) -> str:
        return "-" if v is None else ("[green]ok[/]" if v else "[red]MISMATCH[/]")

    for r in rows:
        expires = utc_iso(r.key_expires_at)[:10] if r.key_expires_at else "-"
        if r.key_expiring:
            expires = f"[yellow]{expires} soon[/]"
        table.add_row(
            r.peer,
            "[green]up[/]" if r.up else "[red]down[/]",
            "-" if r.latency_ms is None else f"{r.latency_ms:.0f} ms",
            yes_no(r.key_ok),
            yes_no(r.tls_ok),
            expires,
            utc_iso(r.last_up_at)[:19].replace("T", " ") if r.last_up_at else "-",
            r.breaker,
            escape(r.error or ""),
        )
    out.print(table if rows else "no peers")
    if any(not r.up for r in rows):
        raise SystemExit(1)


def _health_dict(r: Any) -> dict[str, Any]:
    from dataclasses import asdict

    from connector.enquiries.entry import utc_iso

    d = asdict(r)
    for key in ("checked_at", "last_up_at", "key_expires_at"):
        if d[key] is not None:
            d[key] = utc_iso(d[key])
    return d


@peers.command("discovered")
@config_option
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def peers_discovered(config_path: Path, as_json: bool) -> None:
    """Nodes the running node found on the LAN (discovery.mdns): none is trusted by that."""
    from dataclasses import asdict

    from connector.enquiries.entry import utc_iso
    from connector.peers.discovery import load_discovered, standing
    from connector.peers.trust import load_trust_store

    settings = load_settings(config_path)
    trust = load_trust_store(settings.path(settings.peers_file))
    seen = load_discovered(settings.state_path(settings.discovery.discovered_file))
    rows = [(s, standing(trust, s.node, s.kid)) for s in seen]
    if as_json:
        _json([{**asdict(s), "standing": st, "seen_at": utc_iso(s.seen_at)} for s, st in rows])
        return
    if not settings.discovery.mdns:
        err.print("discovery is off (discovery.mdns in connector.yaml)")
    table = Table("node", "address", "key thumbprint", "protocol", "seen (UTC)", "standing")
    for column in table.columns:
        column.overflow = "fold"
    label = {
        "known": "[green]trusted peer: address followed[/]",
        "key_mismatch": "[red]known id, unpinned key: ignored[/]",
        "unknown": "[yellow]not trusted[/]",
    }
    for s, st in rows:
        table.add_row(
            s.node,
            f"{s.host}:{s.port}",
            s.kid,
            s.protocol,
            utc_iso(s.seen_at)[:19].replace("T", " "),
            label[st],
        )
    out.print(table if rows else "nothing discovered")
    if any(st == "unknown" for _, st in rows):
        out.print(
            "To trust one, confirm its key with its NCB, then: "
            "ncb-connector peers add ID --url https://HOST:PORT --fetch"
        )


# --- agencies ----------------------------------------------------------------------------------


@main.group()
def agencies() -> None:
    """National agencies that ask peers through this node (the local API), and their tokens."""


def _agencies_file(config_path: Path) -> Path:
    settings = load_settings(config_path)
    return settings.state_path(settings.federation.agencies_file)


@agencies.command("add")
@click.argument("agency_id")
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["border", "customs", "immigration", "police", "ncb"]),
    help="Sent to peers as the query's agency_kind.",
)
@config_option
@handles_errors
def agencies_add(agency_id: str, kind: str, config_path: Path) -> None:
    """Register an agency and print its API token, once (only its hash is kept)."""
    from connector.outbound.agencies import add_agency
    from connector.vocabulary import AgencyKind

    agency, token = add_agency(
        _agencies_file(config_path), agency_id, AgencyKind(kind), now=time.time()
    )
    err.print(
        f"agency {agency.id} ({agency.kind.value}) added. Its token follows; it is "
        "shown only now. Outbound rules name the agency as "
        f"'agency: {agency.id}'."
    )
    click.echo(token)


@agencies.command("rotate")
@click.argument("agency_id")
@config_option
@handles_errors
def agencies_rotate(agency_id: str, config_path: Path) -> None:
    """Give an agency a new token; the old one stops working at once."""
    from connector.outbound.agencies import rotate_agency

    agency, token = rotate_agency(_agencies_file(config_path), agency_id, now=time.time())
    err.print(f"agency {agency.id}: new token (the old one no longer works):")
    click.echo(token)


@agencies.command("disable")
@click.argument("agency_id")
@config_option
@handles_errors
def agencies_disable(agency_id: str, config_path: Path) -> None:
    """Refuse an agency's token from its next request on (a running node re-reads the file)."""
    from connector.outbound.agencies import set_agency_enabled

    set_agency_enabled(_agencies_file(config_path), agency_id, False, now=time.time())
    out.print(f"agency {agency_id} disabled")


@agencies.command("enable")
@click.argument("agency_id")
@config_option
@handles_errors
def agencies_enable(agency_id: str, config_path: Path) -> None:
    """Accept a disabled agency's token again."""
    from connector.outbound.agencies import set_agency_enabled

    set_agency_enabled(_agencies_file(config_path), agency_id, True, now=time.time())
    out.print(f"agency {agency_id} enabled")


@agencies.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def agencies_list(config_path: Path, as_json: bool) -> None:
    """Agencies, their kinds and state (tokens are never shown again)."""
    from connector.enquiries.entry import utc_iso
    from connector.outbound.agencies import load_agencies

    rows = sorted(load_agencies(_agencies_file(config_path)).values(), key=lambda a: a.id)

    def when(ts: float | None) -> str | None:
        return utc_iso(ts)[:19].replace("T", " ") if ts else None

    if as_json:
        _json(
            [
                {
                    "id": a.id,
                    "kind": a.kind.value,
                    "enabled": a.enabled,
                    "created_at": when(a.created_at),
                    "rotated_at": when(a.rotated_at),
                    "disabled_at": when(a.disabled_at),
                }
                for a in rows
            ]
        )
        return
    table = Table("agency", "kind", "state", "created (UTC)", "token rotated")
    for a in rows:
        table.add_row(
            a.id,
            a.kind.value,
            "enabled" if a.enabled else "[red]disabled[/]",
            when(a.created_at) or "-",
            when(a.rotated_at) or "-",
        )
    out.print(table if rows else "no agencies")


# --- records -----------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schemas: which revision each database is at, and upgrading them."""


def _databases(settings: Settings) -> list[tuple[Any, str, str]]:
    from connector.storage.migrations import Schema

    return [
        (Schema.RECORDS, "records", settings.records_url),
        (Schema.ENQUIRIES, "enquiry log", settings.enquiries_url),
    ]


@db.command("status")
@config_option
@handles_errors
def db_status(config_path: Path) -> None:
    """Each database's schema revision beside the one this version needs; exits 1 when one
    is not at it (a node would refuse to start)."""
    from connector.storage.migrations import migration_engine, status
    from connector.storage.urls import redacted

    settings = _settings(config_path)
    behind, current = False, True
    for schema, name, url in _databases(settings):
        engine = migration_engine(url)
        try:
            with engine.connect() as conn:
                found = status(schema, conn)
        finally:
            engine.dispose()
        state = (
            "up to date"
            if found.up_to_date
            else "new (created on first use)"
            if found.empty
            else "unknown revision: newer software?"
            if not found.known
            else "needs `ncb-connector db upgrade`"
        )
        behind = behind or not (found.up_to_date or found.empty)
        current = current and found.up_to_date
        click.echo(
            f"{name:12} {redacted(url)}\n{'':12} at {found.current or '-'}, "
            f"this version needs {found.head}: {state}"
        )
    if current:  # the records' search keys: only of a database that exists and is current
        from connector.records.store import RecordStore

        store = RecordStore.open(settings.records_url)
        try:
            for category in store.keys_outdated():
                behind = True
                click.echo(
                    f"{category.value}: search keys made by another version: run "
                    "`ncb-connector db upgrade` (or `records reindex`)"
                )
        finally:
            store.close()
    if behind:
        raise SystemExit(1)


@db.command("upgrade")
@config_option
@handles_errors
def db_upgrade(config_path: Path) -> None:
    """Bring both databases to the schema this version needs (stop the node first). A
    database made before schema versions is adopted when it has all the expected tables."""
    from connector.storage.migrations import migration_engine, upgrade_existing

    settings = _settings(config_path)
    for schema, name, url in _databases(settings):
        engine = migration_engine(url)
        try:
            with engine.begin() as conn:
                before, after = upgrade_existing(schema, conn)
        finally:
            engine.dispose()
        change = f"already at {after}" if before == after else f"{before or 'new'} → {after}"
        click.echo(f"{name}: {change}")
    _key_unkeyed_records(settings)


def _key_unkeyed_records(settings: Settings) -> None:
    """Records whose search keys another version made, or none, get them made now: an
    upgrade must not leave persons findable by reference only, or by the old keys."""
    from connector.records.store import RecordStore

    store = RecordStore.open(settings.records_url)
    try:
        for category in store.keys_outdated():
            n = store.rebuild_keys(category)
            click.echo(f"{category.value}: search keys made for {n} record(s)")
    finally:
        store.close()


@main.group()
def records() -> None:
    """National records behind this node."""


@records.command("import")
@click.argument("file", type=click.Path(path_type=Path, allow_dash=True))
@click.option("--category", required=True, type=click.Choice(_HELD))
@click.option("--format", "fmt", type=click.Choice(["ndjson", "csv", "ftm"]))
@click.option(
    "--status",
    type=click.Choice(["stolen", "lost", "revoked", "invalidated", "embezzled", "missing"]),
    help="FtM only: the status of every imported travel document or vehicle "
    "(FtM has none; default stolen).",
)
@click.option(
    "--warrant-country",
    metavar="CC",
    help="FtM only, wanted_persons: the country that issued the warrants "
    "(default: this node's country).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Make the category equal to the file: records absent from it are removed "
    "(only when no line was rejected, and at most half the category unless "
    "--yes).",
)
@click.option("--yes", is_flag=True, help="With --replace: allow removing more than half.")
@config_option
@handles_errors
def records_import(
    file: Path,
    category: str,
    fmt: str | None,
    status: str | None,
    warrant_country: str | None,
    replace: bool,
    yes: bool,
    config_path: Path,
) -> None:
    """Upsert records from NDJSON, CSV or FollowTheMoney entities; bad lines are reported,
    good lines imported."""
    from connector.records.importer import guess_format, import_stream
    from connector.records.store import RecordStore
    from connector.vocabulary import Category

    settings = _settings(config_path)
    chosen = fmt or (guess_format(str(file)) if str(file) != "-" else "ndjson")
    store = RecordStore.open(settings.records_url)
    started = time.perf_counter()
    try:
        with _open_input(file) as stream, _progress(file) as advance:
            cat = Category(category)
            ftm_status = status or (
                "stolen" if cat in (Category.TRAVEL_DOCUMENTS, Category.VEHICLES) else None
            )
            report = import_stream(
                store,
                stream,
                category=cat,
                fmt=chosen,  # type: ignore[arg-type]
                progress=advance,
                replace=replace,
                max_removal_share=None if yes else 0.5,
                status=ftm_status,
                warrant_country=warrant_country or settings.node[:2],
            )
    except ImportFileError as exc:
        # Which file, as for a bad line: `file:line: reason`.
        detail = (
            exc.detail
            if exc.detail.startswith(f"cannot read {file}")
            else (
                f"{file}:{exc.detail.removeprefix('line ')}"
                if exc.detail.startswith("line ")
                else f"{file}: {exc.detail}"
            )
        )
        if chosen == "csv" and "lacks the column" in detail:
            detail += " (columns are separated by commas)"
        _fail(detail)
    finally:
        store.close()
    elapsed = time.perf_counter() - started
    for r in report.errors:
        err.print(f"{file}:{r.line}: {r.reason}", soft_wrap=True, markup=False)
    if report.rejected > len(report.errors):
        err.print(f"… and {report.rejected - len(report.errors)} more rejected lines")
    out.print(
        f"{report.inserted} inserted, {report.updated} updated, {report.removed} removed, "
        f"{report.rejected} rejected ({elapsed:.1f} s)"
    )
    if report.replace_skipped:
        err.print(f"--replace: nothing was removed, because {report.replace_skipped}")
    if report.rejected:
        raise SystemExit(1)


def _open_input(file: Path) -> Any:
    if str(file) == "-":
        return open(sys.stdin.fileno(), "rb", closefd=False)
    try:
        return file.open("rb")
    except OSError as exc:
        raise ImportFileError(f"cannot read {file}: {exc.strerror}") from exc


class _progress:
    """A progress bar over bytes read, on a terminal only."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self._progress: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not err.is_terminal:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        total = None
        if str(self.file) != "-":
            try:
                total = self.file.stat().st_size
            except OSError:
                total = None
        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self._progress.start()
        task = self._progress.add_task("importing", total=total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


@contextlib.contextmanager
def _record_store(settings: Settings) -> Iterator[Any]:
    from connector.records.store import RecordStore

    store = RecordStore.open(settings.records_url)
    try:
        yield store
    finally:
        store.close()


def _parse_ref(ref: str, node: str) -> tuple[Any, str]:
    from connector.vocabulary import Category

    parts = ref.split(":", 2)
    if len(parts) == 3 and parts[0] != node:
        _fail(f"{ref} is a record of {parts[0]}, not of this node ({node})")
    category, _, record_id = (parts[1], "", parts[2]) if len(parts) == 3 else ref.partition("/")
    if category not in _HELD or not record_id:
        _fail(f"{ref!r}: give NODE:category:id (as in an answer) or category/id")
    return Category(category), record_id


@records.command("show")
@click.argument("ref")
@config_option
@handles_errors
def records_show(ref: str, config_path: Path) -> None:
    """One record in full, by its ref (FR:travel_documents:ID) or category/ID."""

    settings = load_settings(config_path)
    category, record_id = _parse_ref(ref, settings.node)
    with _record_store(settings) as store:
        record = store.get(category, record_id)
    if record is None:
        _fail(f"no record {category.value}/{record_id}", 1)
        return
    _json({"ref": f"{settings.node}:{category.value}:{record.id}", "fields": record.fields})


@records.command("remove")
@click.argument("ref")
@config_option
@handles_errors
def records_remove(ref: str, config_path: Path) -> None:
    """Remove one record (e.g. a vehicle that was found); it is no longer a hit."""

    settings = load_settings(config_path)
    category, record_id = _parse_ref(ref, settings.node)
    with _record_store(settings) as store:
        removed = store.remove(category, record_id)
    if not removed:
        _fail(f"no record {category.value}/{record_id}", 1)
    out.print(f"removed {category.value}/{record_id}")


@records.command("stats")
@config_option
@handles_errors
def records_stats(config_path: Path) -> None:
    """Records held per category."""
    from connector.vocabulary import Category

    with _record_store(load_settings(config_path)) as store:
        for category in Category:
            out.print(f"{category.value:<20} {store.count(category):>10}")


# --- policy ------------------------------------------------------------------------------------


@records.command("reindex")
@click.option(
    "--category",
    "categories",
    multiple=True,
    type=click.Choice(["wanted_persons", "terrorism_suspects"]),
    help="Only this category (repeatable); default: every category with keys.",
)
@config_option
@handles_errors
def records_reindex(categories: tuple[str, ...], config_path: Path) -> None:
    """Make every record's search keys anew from its fields (after an upgrade that changed
    name matching). The records themselves are not touched."""
    from connector.records.store import RecordStore
    from connector.vocabulary import Category

    settings = _settings(config_path)
    store = RecordStore.open(settings.records_url)
    try:
        for category in store.key_tables:
            if categories and category.value not in categories:
                continue
            started = time.perf_counter()
            n = store.rebuild_keys(Category(category))
            click.echo(
                f"{category.value}: search keys made for {n} record(s) "
                f"({time.perf_counter() - started:.1f} s)"
            )
    finally:
        store.close()


@records.command("sync")
@click.option("--source", "names", multiple=True, help="Only this source (repeatable).")
@click.option(
    "--allow-removal",
    is_flag=True,
    help="Apply removals even when more than the source's max_removal_share of "
    "its records would go.",
)
@config_option
@handles_errors
def records_sync(names: tuple[str, ...], allow_removal: bool, config_path: Path) -> None:
    """Pull what changed in the national databases of sources.yaml (read only); exits 1
    when a row was rejected or removals were refused."""
    from connector.records.store import RecordStore
    from connector.sources.model import load_sources
    from connector.sources.sync import sync

    settings = _settings(config_path)
    sources = load_sources(settings.path(settings.sources_file)).sources
    unknown = set(names) - {s.name for s in sources}
    if unknown:
        _fail(f"no source {', '.join(sorted(unknown))} in {settings.sources_file}")
    if not sources:
        _fail(f"no sources in {settings.path(settings.sources_file)}")
    store = RecordStore.open(settings.records_url)
    failed = False
    try:
        for source in sources:
            if names and source.name not in names:
                continue
            report = sync(source, store, clock=time.time, allow_removal=allow_removal)
            click.echo(
                f"{source.name} → {report.category}: read {report.read}, "
                f"inserted {report.inserted}, updated {report.updated}, "
                f"unchanged {report.unchanged}, removed {report.removed}, "
                f"rejected {report.rejected}"
            )
            for key, reason in report.errors[:20]:
                click.echo(f"  rejected {key.replace(chr(31), '/')}: {reason}", err=True)
            if report.rejected > 20:
                click.echo(f"  … and {report.rejected - 20} more", err=True)
            if report.refused:
                click.echo(f"  {report.refused}", err=True)
            failed = failed or bool(report.rejected or report.refused)
    finally:
        store.close()
    if failed:
        raise SystemExit(1)


@main.group()
def policy() -> None:
    """The access policy (policies/*.yaml)."""


@policy.command("check")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Exit 2 when there are warnings.")
@config_option
@handles_errors
def policy_check(directory: Path | None, strict: bool, config_path: Path) -> None:
    """Validate a policy directory: every error with file, line and rule name (with the
    config, also that every notification channel it names is defined)."""
    from connector.node.live import policy_channels
    from connector.policy import check_policy

    channels: set[str] | None = None
    if directory is None:
        settings = load_settings(config_path)
        directory = settings.path(settings.policy_dir)
        channels = set(settings.notifications.channels)
    report = check_policy(directory)
    for d in report.errors:
        err.print(str(d), soft_wrap=True, markup=False)
    for d in report.warnings:
        err.print(str(d), soft_wrap=True, markup=False)
    unknown = (
        sorted(policy_channels(report.policy) - channels)
        if report.policy is not None and channels is not None
        else []
    )
    if unknown:
        # The node refuses such a policy: notices for them would reach nobody.
        err.print(
            f"{directory}: the policy names notification channel(s) "
            f"{', '.join(unknown)} that connector.yaml does not define under "
            "notifications.channels",
            soft_wrap=True,
            markup=False,
        )
    if report.errors or unknown:
        errors = len(report.errors) + (1 if unknown else 0)
        err.print(
            f"{errors} error(s), {len(report.warnings)} warning(s); "
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


def _load_policy_or_fail(directory: Path) -> Any:
    from connector.policy import check_policy

    report = check_policy(directory)
    if report.errors:
        for d in report.errors:
            err.print(str(d), soft_wrap=True, markup=False)
        _fail(f"{directory}: the policy has {len(report.errors)} error(s)", 1)
    return report.policy


def _peer_id_or_fail(text: str) -> str:
    from connector.vocabulary import is_node_id

    peer = text.strip().upper()
    if not is_node_id(peer):
        hint = " (the United Kingdom is GB)" if peer == "UK" else ""
        _fail(f"{text!r} is not a node id: an ISO 3166-1 alpha-2 code, e.g. DE or DE-2{hint}")
    return peer


_KINDS = ["ncb", "police", "border", "customs", "immigration"]
_PURPOSES = [
    "border_control",
    "criminal_investigation",
    "counter_terrorism",
    "vehicle_check",
    "art_trafficking",
    "identification",
]
_CATEGORIES = [
    "wanted_persons",
    "terrorism_suspects",
    "travel_documents",
    "vehicles",
    "artworks",
    "dna_profiles",
    "fingerprints",
]


@policy.command("explain")
@click.option("--from", "peer", required=True, help="The asking node, e.g. DE.")
@click.option("--agency-kind", required=True, type=click.Choice(_KINDS))
@click.option("--purpose", required=True, type=click.Choice(_PURPOSES))
@click.option("--category", required=True, type=click.Choice(_CATEGORIES))
@click.option("--case", "has_case", is_flag=True, help="The query carries a case reference.")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
@config_option
@handles_errors
def policy_explain(
    peer: str,
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
    from connector.vocabulary import AgencyKind, Category, Purpose

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


@policy.command("matrix")
@click.option(
    "--from",
    "peers",
    multiple=True,
    help="Peers to show (default: every peer the policy names, and * for any other).",
)
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
    from connector.vocabulary import Category

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


@policy.command("diff")
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
    out.print(table)
    out.print(f"{len(changes)} outcome(s) change")
    raise SystemExit(1)


# --- enquiries ---------------------------------------------------------------------------------


def parse_since(text: str, *, now: datetime) -> float:
    """`2h`, `30m`, `7d` back from now, or an ISO 8601 date or time (UTC unless it says)."""
    m = re.fullmatch(r"(\d+)\s*([smhd])", text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return (now - timedelta(**{unit: int(m.group(1))})).timestamp()
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter("give 2h, 30m, 7d or an ISO 8601 date/time") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


@main.group()
def enquiries() -> None:
    """The enquiry log."""


@enquiries.command("list")
@click.option("--peer")
@click.option("--since", help="2h, 30m, 7d, or an ISO date/time.")
@click.option("--direction", type=click.Choice(["in", "out"]))
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the newest N.")
@click.option("--json", "as_json", is_flag=True)
@config_option
@handles_errors
def enquiries_list(
    peer: str | None,
    since: str | None,
    direction: str | None,
    limit: int | None,
    as_json: bool,
    config_path: Path,
) -> None:
    """List enquiries, oldest first."""
    from connector.cli.render import enquiries_table, entry_dict
    from connector.enquiries.log import EnquiryLog

    settings = load_settings(config_path)
    since_ts = parse_since(since, now=datetime.now(UTC)) if since else None
    log_ = EnquiryLog.open(settings.enquiries_url)
    try:
        rows = log_.list(
            peer=peer.upper() if peer else None,
            since=since_ts,
            direction=direction,  # type: ignore[arg-type]
            limit=limit,
            newest_first=limit is not None,
        )
        if limit is not None:
            rows.reverse()  # the newest N, shown oldest first like the rest
    finally:
        log_.close()
    if as_json:
        _json([entry_dict(r) for r in rows])
        return
    out.print(enquiries_table(rows) if rows else "no enquiries")


@enquiries.command("show")
@click.argument("enquiry_id")
@config_option
@handles_errors
def enquiries_show(enquiry_id: str, config_path: Path) -> None:
    """One enquiry in full, with the deciding rules and the policy digest."""
    from connector.cli.render import entry_dict
    from connector.enquiries.log import EnquiryLog

    settings = load_settings(config_path)
    log_ = EnquiryLog.open(settings.enquiries_url)
    try:
        row = log_.get(enquiry_id)
    finally:
        log_.close()
    if row is None:
        _fail(f"no enquiry {enquiry_id}", 1)
        return
    _json(entry_dict(row, with_token=True))


@enquiries.command("verify")
@click.option(
    "--expect",
    "expect",
    metavar="CHECKPOINT",
    help="A checkpoint taken earlier — SEQ:HASH, or the signed token the node logs "
    "as enquiry_log_checkpoint (`signed`) and verify prints: also proves no "
    "newer rows were cut off before it.",
)
@config_option
@handles_errors
def enquiries_verify(expect: str | None, config_path: Path) -> None:
    """Check the hash chain; exit 1 and name the first broken row."""
    from connector.crypto.jws import Signer
    from connector.crypto.keyfiles import read_signing_key
    from connector.enquiries.checkpoints import read_checkpoint, sign_checkpoint
    from connector.enquiries.log import EnquiryLog

    settings = load_settings(config_path)
    signer = Signer(read_signing_key(settings.path(settings.key_file)))
    checkpoint = (
        None if expect is None else read_checkpoint(expect, key=signer.public, node=settings.node)
    )
    log_ = EnquiryLog.open(settings.enquiries_url)
    try:
        report = log_.verify(expect=checkpoint)
    finally:
        log_.close()
    if not report.ok:
        err.print(
            f"[bold red]BROKEN[/] at row {report.broken_seq}: {report.problem} "
            f"({report.rows} row(s) read)"
        )
        raise SystemExit(1)
    out.print(f"ok: {report.rows} row(s), chain head {report.head}")
    if checkpoint is not None:
        out.print(f"the checkpoint holds: row {checkpoint[0]} is there, unchanged")
    token = sign_checkpoint(
        signer, node=settings.node, seq=report.rows, head=report.head, at=time.time()
    )
    out.print("checkpoint (keep it off this host; verify --expect it later):")
    click.echo(token)


# --- notifications -----------------------------------------------------------------------------


@main.group()
def notifications() -> None:
    """Notices to the NCB about foreign enquiries: the outbox and the channels."""


@notifications.command("list")
@click.option("--pending", "state", flag_value="pending", help="Only those not yet delivered.")
@click.option("--dead", "state", flag_value="dead", help="Only those given up on.")
@click.option("--delivered", "state", flag_value="delivered")
@click.option(
    "--limit", type=click.IntRange(1), default=200, show_default=True, help="The newest N."
)
@click.option("--json", "as_json", is_flag=True)
@config_option
@handles_errors
def notifications_list(state: str | None, limit: int, as_json: bool, config_path: Path) -> None:
    """Notices with their state, attempts and last error."""
    from connector.enquiries.entry import utc_iso
    from connector.notify.outbox import Outbox

    settings = load_settings(config_path)
    box = Outbox.open(settings.enquiries_url)
    try:
        rows = box.list(state=state, limit=limit)  # type: ignore[arg-type]
        counts = box.counts()
    finally:
        box.close()
    if as_json:
        _json(
            [
                {
                    "id": r.notice.id,
                    "channel": r.notice.channel,
                    "kind": r.notice.kind,
                    "enquiry": r.notice.enquiry,
                    "created_at": utc_iso(r.notice.created_at),
                    "state": r.state,
                    "attempts": r.attempts,
                    "next_attempt_at": utc_iso(r.next_attempt_at) if r.state == "pending" else None,
                    "last_attempt_at": utc_iso(r.last_attempt_at) if r.last_attempt_at else None,
                    "delivered_at": utc_iso(r.delivered_at) if r.delivered_at else None,
                    "last_error": r.last_error,
                    "body": r.notice.body,
                }
                for r in rows
            ]
        )
        return
    table = Table(
        "id",
        "created (UTC)",
        "channel",
        "kind",
        "enquiry",
        "state",
        "attempts",
        "next / last error",
    )
    for column in table.columns:
        column.overflow = "fold"
    for r in rows:
        style = {"dead": "red", "pending": "yellow"}.get(r.state, "green")
        detail = f"next {utc_iso(r.next_attempt_at)[11:19]}" if r.state == "pending" else ""
        if r.last_error:
            detail = f"{detail} {r.last_error}".strip()
        table.add_row(
            r.notice.id,
            utc_iso(r.notice.created_at)[:19].replace("T", " "),
            r.notice.channel,
            r.notice.kind,
            r.notice.enquiry or "-",
            f"[{style}]{r.state}[/]",
            str(r.attempts),
            detail,
        )
    out.print(table if rows else "no notices")
    out.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "the outbox is empty")


@notifications.command("retry")
@click.argument("notice_ids", nargs=-1)
@click.option("--dead", "all_dead", is_flag=True, help="Every dead notice.")
@config_option
@handles_errors
def notifications_retry(notice_ids: tuple[str, ...], all_dead: bool, config_path: Path) -> None:
    """Make notices (or every dead one) due again; a running node delivers them."""
    from connector.notify.outbox import Outbox

    if bool(notice_ids) == all_dead:
        _fail("give notice ids or --dead")
    settings = load_settings(config_path)
    box = Outbox.open(settings.enquiries_url)
    try:
        n = box.retry(None if all_dead else list(notice_ids), now=time.time())
    finally:
        box.close()
    out.print(f"{n} notice(s) due again")
    if not n:
        raise SystemExit(1)


@notifications.command("test")
@click.argument("channel")
@config_option
@handles_errors
def notifications_test(channel: str, config_path: Path) -> None:
    """Send a test notice through CHANNEL now and say whether it arrived."""
    import aiohttp

    from connector.enquiries.entry import new_enquiry_id
    from connector.node.service import Node
    from connector.notify.channels import DeliveryError, build_senders
    from connector.notify.notice import Notice

    settings = _settings(config_path)
    if channel not in settings.notifications.channels:
        known = ", ".join(sorted(settings.notifications.channels)) or "none"
        _fail(f"no channel {channel!r} in connector.yaml (channels: {known})")
    node = Node.from_settings(settings)
    now = time.time()
    notice = Notice(
        id=new_enquiry_id(now),
        channel=channel,
        kind="test",
        enquiry=None,
        created_at=now,
        body={"type": "test", "node": settings.node, "message": "test notice from ncb-connector"},
    )

    async def send() -> None:
        async with aiohttp.ClientSession() as session:
            senders = build_senders(
                {channel: settings.notifications.channels[channel]},
                signer=node.signer,
                node=settings.node,
                session=session,
                clock=time.time,
                base_dir=settings.base_dir,
                env=os.environ,
            )
            await senders[channel].send(notice)

    try:
        asyncio.run(send())
    except DeliveryError as exc:
        _fail(f"{channel}: {exc}", 1)
    out.print(f"{channel}: delivered test notice {notice.id}")


# --- asking a peer -----------------------------------------------------------------------------


def _pseudonym(agency: str, node: Any) -> str:
    """`sub` must never be a person's name (protocol §6), and logins often are: a keyed hash
    of the login (the node's own key), stable, so the NCB can tell who asked from its log
    (`ncb-connector` run by that login gives the same value)."""
    import hashlib
    import hmac

    login = os.environ.get("USER") or os.environ.get("LOGNAME") or "cli"
    mac = hmac.new(node.signer.kid.encode(), login.encode(), hashlib.sha256).hexdigest()
    return f"{agency}/u-{mac[:12]}"


@main.command()
@click.option("--peer", "peer_id", required=True)
@click.option("--category", required=True, type=click.Choice(_HELD))
@click.option("--number")
@click.option("--country")
@click.option("--type", "document_type")
@click.option("--mrz", help="ICAO 9303 MRZ, lines separated by newlines.")
@click.option(
    "--criteria",
    "criteria_json",
    metavar="JSON",
    help='Criteria as JSON for any category, e.g. \'{"vin": "1M8GDM9AXKP042788"}\' '
    "(see docs/protocol.md §6).",
)
@click.option(
    "--purpose",
    default="border_control",
    show_default=True,
    type=click.Choice(
        [
            "border_control",
            "criminal_investigation",
            "counter_terrorism",
            "vehicle_check",
            "art_trafficking",
            "identification",
        ]
    ),
)
@click.option(
    "--agency",
    default="ncb",
    show_default=True,
    help="The national agency asking (outbound policy).",
)
@click.option(
    "--agency-kind",
    default="ncb",
    show_default=True,
    type=click.Choice(["ncb", "police", "border", "customs", "immigration"]),
)
@click.option(
    "--sub",
    default=None,
    help="Pseudonymous end user, sent to peers (default: AGENCY/ and a keyed hash "
    "of your login, which this node can map back and peers cannot).",
)
@click.option("--case", "case_ref", default=None)
@click.option("--json", "as_json", is_flag=True)
@config_option
@handles_errors
def query(
    peer_id: str,
    category: str,
    number: str | None,
    country: str | None,
    document_type: str | None,
    mrz: str | None,
    criteria_json: str | None,
    purpose: str,
    agency: str,
    agency_kind: str,
    sub: str | None,
    case_ref: str | None,
    as_json: bool,
    config_path: Path,
) -> None:
    """Ask one peer; the signed answer is verified and the enquiry logged.

    Exit status: 0 answered (hit or no hit), 3 a check was denied or could not be answered,
    1 the peer could not be asked or its answer did not verify, 2 bad input."""
    from connector.cli.render import answer_table
    from connector.errors import InvalidCriteria
    from connector.node.node import Node
    from connector.outbound.desk import ask_peer
    from connector.vocabulary import AgencyKind, Category, Purpose

    criteria: dict[str, Any] | None = None
    if criteria_json is not None:
        try:
            criteria = orjson.loads(criteria_json)
        except orjson.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--criteria") from exc
        if not isinstance(criteria, dict):
            raise click.BadParameter("a JSON object", param_hint="--criteria")
    node = Node.from_settings(_settings(config_path))
    node.load_live()
    try:
        exchange = asyncio.run(
            ask_peer(
                node.desk,
                peer=peer_id.upper(),
                agency=agency,
                agency_kind=AgencyKind(agency_kind),
                sub=sub or _pseudonym(agency, node),
                purpose=Purpose(purpose),
                case=case_ref,
                category=Category(category),
                criteria=criteria,
                mrz=mrz,
                number=number,
                country=country,
                document_type=document_type,
            )
        )
    except InvalidCriteria as exc:  # bad input is ours to refuse, not a peer's
        _fail(f"{exc.extra.get('field') or 'criteria'}: {exc.detail}")
        return
    except (PeerError, OutboundDenied) as exc:
        _fail(exc.detail, 1)
        return
    if as_json:
        _json(exchange.answer.model_dump(mode="json"))
    else:
        out.print(answer_table(exchange))
    if any(r.status in ("denied", "error") for r in exchange.answer.results):
        raise SystemExit(3)


def _subject_options(fn: F) -> F:
    """An option per field of the subject (outbound/subject.py), in the subject's order."""
    from connector.outbound.subject import subject_fields

    for f in reversed(subject_fields()):
        fn = click.option(f.option, f.name, help=f.help)(fn)
    return fn


@main.command()
@_subject_options
@click.option("--peer", "peer_ids", multiple=True, help="Ask only these peers (repeatable).")
@click.option(
    "--purpose",
    default="border_control",
    show_default=True,
    type=click.Choice(
        [
            "border_control",
            "criminal_investigation",
            "counter_terrorism",
            "vehicle_check",
            "art_trafficking",
            "identification",
        ]
    ),
)
@click.option(
    "--agency",
    default="ncb",
    show_default=True,
    help="The national agency asking (outbound policy).",
)
@click.option(
    "--agency-kind",
    default="ncb",
    show_default=True,
    type=click.Choice(["ncb", "police", "border", "customs", "immigration"]),
)
@click.option(
    "--sub",
    default=None,
    help="Pseudonymous end user, sent to peers (default: AGENCY/ and a keyed hash "
    "of your login, which this node can map back and peers cannot).",
)
@click.option("--case", "case_ref", default=None)
@click.option(
    "--deadline-ms",
    type=click.IntRange(50, 30_000),
    default=None,
    help="Default: federation.deadline_ms.",
)
@click.option("--json", "as_json", is_flag=True)
@config_option
@handles_errors
def search(
    peer_ids: tuple[str, ...],
    purpose: str,
    agency: str,
    agency_kind: str,
    sub: str | None,
    case_ref: str | None,
    deadline_ms: int | None,
    as_json: bool,
    config_path: Path,
    **subject: str | None,
) -> None:
    """Check a subject (document, person, vehicle) against the national records and every
    allowed peer at once; a table fills in as peers answer.

    Exit status: 0 done, 3 a hit somewhere, 1 nothing could be asked, 2 bad input."""
    from rich.live import Live

    from connector.cli.render import fanout_table
    from connector.node.node import Node
    from connector.outbound.desk import search_peers
    from connector.outbound.subject import Subject
    from connector.vocabulary import AgencyKind, Purpose

    node = Node.from_settings(_settings(config_path))
    node.load_live()
    live = (
        Live(console=out, refresh_per_second=12, transient=False)
        if out.is_terminal and not as_json
        else None
    )

    def update(prepared: Any, outcomes: Any) -> None:
        if live is not None:
            ids = [c.id for c in prepared.request.checks]
            live.update(
                fanout_table(ids, [p.peer for p in prepared.plans], outcomes, prepared.national)
            )

    started = time.monotonic()
    try:
        with live if live is not None else contextlib.nullcontext():
            prepared, outcomes = asyncio.run(
                search_peers(
                    node.desk,
                    subject=Subject(**subject),
                    peers=[p.upper() for p in peer_ids] or "*",
                    agency=agency,
                    agency_kind=AgencyKind(agency_kind),
                    sub=sub or _pseudonym(agency, node),
                    purpose=Purpose(purpose),
                    case=case_ref,
                    deadline_ms=deadline_ms,
                    on_update=update,
                )
            )
    except OutboundDenied as exc:
        _fail(exc.detail, 1)
        return
    elapsed = time.monotonic() - started
    checks = prepared.request.checks
    ids = [c.id for c in checks]
    peers_order = [p.peer for p in prepared.plans]
    if as_json:
        from connector.server.local_checks import _check_json, _national_json, _peer_json

        _json(
            {
                "checks": [
                    {
                        "id": c.id,
                        "category": c.category.value,
                        "criteria": dict(c.criteria),
                        "national": _national_json(prepared.national[i]),
                        "peers": [
                            {"peer": p, **_check_json(outcomes[p].checks[i])} for p in peers_order
                        ],
                    }
                    for i, c in enumerate(checks)
                ],
                "peers": [_peer_json(outcomes[p]) for p in peers_order],
            }
        )
    elif live is None:
        out.print(fanout_table(ids, peers_order, outcomes, prepared.national))
    if not as_json:
        counts: dict[str, int] = {}
        for o in outcomes.values():
            counts[o.status] = counts.get(o.status, 0) + 1
        out.print(
            f"{len(peers_order)} peer(s) in {elapsed * 1000:.0f} ms: "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        )
    hit = any(c.status == "hit" for o in outcomes.values() for c in o.checks) or any(
        r.status == "hit" for r in prepared.national
    )
    if hit:
        raise SystemExit(3)


# --- demo --------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--nodes",
    default=3,
    show_default=True,
    type=click.IntRange(3, 196),
    help="How many nodes; beyond 3, one agency check fans out to all of them.",
)
@click.option(
    "--keep",
    type=click.Path(path_type=Path),
    default=None,
    help="Build the nodes here and leave them (default: a temporary directory).",
)
@handles_errors
def demo(nodes: int, keep: Path | None) -> None:
    """Start a small network on loopback, run cross-border checks, print answers and logs."""
    from connector.demo import run_demo

    configure_logging(fmt="console", level="warning")
    # Piped into a file or a pager, 80 columns would fold every ref in two.
    console = (
        out if out.is_terminal else Console(highlight=False, emoji=False, width=max(out.width, 160))
    )
    code = asyncio.run(run_demo(console, nodes=nodes, keep=keep))
    raise SystemExit(code)
