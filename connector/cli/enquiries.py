"""`ncb-connector enquiries`: listing, showing and verifying the enquiry log."""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import closing
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import click

from connector.cli.common import (
    EXIT_INCOMPLETE,
    _fail,
    _json,
    config_option,
    err,
    handles_errors,
    json_option,
    out,
    record_change,
)
from connector.cli.render import enquiries_table, entry_dict, fit, utc_time
from connector.enquiries.entry import Direction, utc_iso
from connector.settings.config import Settings, load_settings

if TYPE_CHECKING:
    from connector.enquiries.archive import ArchiveCheck, Archived
    from connector.enquiries.audit import Audit, Recalled, WitnessAudit


def parse_since(text: str, *, now: datetime, option: str = "--since") -> float:
    """`2h`, `30m`, `7d` back from now, or an ISO 8601 date or time (UTC unless it says);
    a bad one is refused naming `option`."""
    m = re.fullmatch(r"(\d+)\s*([smhd])", text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        try:
            return (now - timedelta(**{unit: int(m.group(1))})).timestamp()
        except (OverflowError, ValueError) as exc:  # before year 1: no row is that old
            raise click.BadParameter(
                f"{text} reaches back before the year 1", param_hint=option
            ) from exc
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(
            "give 2h, 30m, 7d or an ISO 8601 date/time (2026-12-01, 2026-12-01T08:00Z)",
            param_hint=option,
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


@click.command("list")
@click.option("--peer")
@click.option("--since", help="2h, 30m, 7d, or an ISO date/time.")
@click.option("--direction", type=click.Choice(get_args(Direction)))
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the newest N.")
@click.option("--json", "as_json", is_flag=True)
@config_option
@handles_errors
def enquiries_list(
    peer: str | None,
    since: str | None,
    direction: Direction | None,
    limit: int | None,
    as_json: bool,
    config_path: Path,
) -> None:
    """List enquiries, oldest first."""
    from connector.enquiries.log import EnquiryLog

    settings = load_settings(config_path)
    since_ts = parse_since(since, now=datetime.now(UTC)) if since else None
    with closing(EnquiryLog.open(settings.enquiries_url)) as log:
        rows = log.list(
            peer=peer.upper() if peer else None,
            since=since_ts,
            direction=direction,
            limit=limit,
            newest_first=limit is not None,
        )
    if limit is not None:
        rows.reverse()  # the newest N, shown oldest first like the rest
    if as_json:
        _json([entry_dict(r) for r in rows])
        return
    out.print(fit(enquiries_table(rows), out) if rows else "no enquiries")


@click.command("show")
@click.argument("enquiry_id")
@config_option
@handles_errors
def enquiries_show(enquiry_id: str, config_path: Path) -> None:
    """One enquiry in full, with the deciding rules and the policy digest."""
    from connector.enquiries.log import EnquiryLog

    settings = load_settings(config_path)
    with closing(EnquiryLog.open(settings.enquiries_url)) as log:
        row = log.get(enquiry_id)
    if row is None:
        _fail(f"no enquiry {enquiry_id}", 1)
        return
    _json(entry_dict(row, with_token=True))


@click.command("archive")
@click.option(
    "--before",
    "before",
    required=True,
    metavar="DATE",
    help="Archive the rows logged before this ISO 8601 date or time (UTC unless it says), "
    "or this long ago: 30d, 12h. The newest row always stays in the log.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the archive file goes (default: retention.dir in connector.yaml, `archive` "
    "beside the log).",
)
@config_option
@json_option
@handles_errors
def enquiries_archive(
    before: str, directory: Path | None, config_path: Path, as_json: bool
) -> None:
    """Move the oldest rows of the enquiry log into one signed, compressed archive file.

    The file is written whole, synced, read back and checked before any row leaves the log;
    its rows go in the same transaction that records where the live log now starts. Safe
    while the node runs. Keep the archive files: `enquiries verify --archive DIR` checks the
    whole chain through them.

    Exit status: 0 archived, or nothing old enough to archive; 2 nothing was removed (a date
    in the future, a directory that cannot be written, a file that did not read back)."""
    from connector.crypto.jws import Signer
    from connector.enquiries.archive import archive_log
    from connector.enquiries.log import EnquiryLog
    from connector.node.keyring import KeyPaths, in_force
    from connector.trail.entry import Action

    now = datetime.now(UTC)
    cutoff = parse_since(before, now=now, option="--before")
    if cutoff > now.timestamp():
        _fail(
            f"--before {before} is in the future: only rows already logged can be archived; "
            "give a date or time up to now (e.g. --before 90d)"
        )
    settings = load_settings(config_path)
    target = directory if directory is not None else settings.state_path(settings.retention.dir)
    # Signed with the key the node signs with now (over a rotation, the new one once active).
    signer = Signer(in_force(KeyPaths.of(settings), now.timestamp()).signing)
    with closing(EnquiryLog.open(settings.enquiries_url)) as log:
        done = archive_log(log, signer=signer, node=settings.node, before=cutoff, directory=target)
    if done.files:
        # Rows left the log: a change to what the node holds. (The node's retention job
        # records nothing here: it runs no admin's command; the journal has its event.)
        record_change(
            settings,
            Action.ENQUIRIES_ARCHIVED,
            settings.node,
            rows=done.rows,
            first_seq=done.first_seq,
            last_seq=done.last_seq,
            head=done.head,
            files=[str(p) for p in done.files],
        )
    if as_json:
        _json(archived_dict(done))
        return
    if done.resumed is not None:
        out.print(f"finished an earlier run: the rows of {done.resumed} left the log")
    if not done.files:
        out.print(
            f"nothing to archive: no row before {utc_iso(cutoff)} (the newest row always stays)"
        )
    else:
        into = (
            str(done.files[0])
            if len(done.files) == 1
            else f"{len(done.files)} files in {done.files[0].parent}"
        )
        out.print(f"archived {done.rows} row(s), {done.first_seq}..{done.last_seq}, into {into}")
        if len(done.files) > 1:
            for path in done.files:
                out.print(f"  {path.name}")
    if done.base.seq:
        out.print(
            f"the log now starts after row {done.base.seq} (chains from {done.base.hash})",
            soft_wrap=True,
        )


def archived_dict(done: Archived) -> dict[str, object]:
    """What `enquiries archive --json` prints."""
    return {
        "rows": done.rows,
        "files": [str(p) for p in done.files],
        "first_seq": done.first_seq,
        "last_seq": done.last_seq,
        "head": done.head,
        "base": {"seq": done.base.seq, "hash": done.base.hash},
        "resumed": None if done.resumed is None else str(done.resumed),
    }


@click.command("verify")
@click.option(
    "--expect",
    "expect",
    metavar="CHECKPOINT",
    help="A checkpoint taken earlier — SEQ:HASH, or the signed token the node logs "
    "as enquiry_log_checkpoint (`signed`) and verify prints: also proves no "
    "newer rows were cut off before it.",
)
@click.option(
    "--witnesses",
    "witnesses",
    is_flag=True,
    help="Also ask every peer in peers.yaml for the checkpoints this node sent it, and check "
    "each against the log: catches rows cut off or rewritten with the chain recomputed, "
    "with nothing kept on this host.",
)
@click.option(
    "--archive",
    "with_archives",
    is_flag=True,
    help="Also check the archive files given as FILES (or every archive in a directory): "
    "each one's signature, digest and rows, and the chain from row 1 through them into the "
    "log.",
)
@click.argument("files", nargs=-1, type=click.Path(exists=True, path_type=Path))
@config_option
@json_option
@handles_errors
def enquiries_verify(
    expect: str | None,
    witnesses: bool,
    with_archives: bool,
    files: tuple[Path, ...],
    config_path: Path,
    as_json: bool,
) -> None:
    """Check the hash chain; exit 1 and name the first broken row.

    Rows archived by `enquiries archive` are checked only with --archive FILES…; without,
    the chain is checked from where the live log starts and what only archived rows could
    prove is said to be not checked.

    Exit status: 0 the log holds; 1 the chain is broken (in the log or an archive, or
    between them), a disclosed ref or a notice does not match it, or a witness holds a row
    the log lost or changed; 2 FILES without --archive, or --archive without FILES; 4 (with
    --witnesses) the log holds as far as the witnesses that answered can tell, but not every
    peer could be asked."""
    import connector.notify.tables  # noqa: F401  (declares the outbox, whose rows the log seals)
    from connector.crypto.jws import Signer
    from connector.enquiries.archive import archive_files
    from connector.enquiries.audit import audit_log
    from connector.node.keyring import KeyPaths, in_force

    if bool(files) != with_archives:
        _fail(
            "give the archive files after --archive (e.g. --archive /var/lib/ncb-connector/"
            "archive), or neither"
        )
    paths = archive_files(files)
    if with_archives and not paths:
        _fail(f"no archive file (*.ncbarchive) in {', '.join(map(str, files))}")
    settings = load_settings(config_path)
    recalled = asyncio.run(_recall_witnesses(settings)) if witnesses else None
    # The key in force signs the new checkpoint; over a rotation, a checkpoint or an archive
    # may be signed by the old key or the new one.
    ring = in_force(KeyPaths.of(settings), time.time())
    audit = audit_log(
        settings,
        expect=expect,
        now=time.time(),
        signer=Signer(ring.signing),
        keys=ring.public_keys,
        witnessed=recalled,
        archives=paths,
    )
    report = audit.report
    code = 0 if audit.ok else 1
    if code == 0 and any(w.error for w in audit.witnesses or ()):
        code = EXIT_INCOMPLETE
    if as_json:
        doc: dict[str, object] = {
            "ok": audit.ok,
            "rows": report.rows,
            "head": report.head if report.ok else None,
            "broken_seq": report.broken_seq,
            "problem": report.problem,
            "checkpoint_held": None if audit.checkpoint is None else audit.checkpoint[0],
            "checkpoint": audit.token,
            "disclosed_refs": [asdict(f) for f in report.disclosures],
            "sealed": [asdict(f) for f in report.sealed],
            "head_seq": report.last_seq if report.ok else None,
            "archived": archived_part_dict(audit),
        }
        doc["kept_checkpoint"] = (
            None
            if audit.kept is None
            else {
                "seq": audit.kept.seq,
                "at": utc_iso(audit.kept.at),
                "ok": audit.kept.problem is None,
                "problem": audit.kept.problem,
                "archived": audit.kept.archived,
            }
        )
        if audit.witnesses is not None:
            doc["witnesses"] = [witness_dict(w) for w in audit.witnesses]
        _json(doc)
        if code:
            raise SystemExit(code)
        return
    _print_archived(audit)
    if not report.ok:
        where = "" if report.broken_seq is None else f" at row {report.broken_seq}"
        err.print(f"[bold red]BROKEN[/]{where}: {report.problem} ({report.rows} row(s) read)")
        for message in [f.message for f in report.disclosures] + [f.message for f in report.sealed]:
            err.print(f"  {message}", markup=False)
    elif audit.ok:
        out.print(f"ok: {report.rows} row(s), chain head {report.head}")
    else:
        # A chain recomputed after a rewrite is whole too: what the witnesses hold decides.
        err.print(f"the chain is whole ({report.rows} row(s), head {report.head}), but:")
    if report.checkpoint_archived and audit.checkpoint is not None:
        out.print(
            f"the checkpoint's row {audit.checkpoint[0]} is archived, not checked here "
            "(give the archives with --archive)"
        )
    elif audit.checkpoint is not None and report.ok:
        out.print(f"the checkpoint holds: row {audit.checkpoint[0]} is there, unchanged")
    if audit.kept is not None and report.ok:
        kept = audit.kept
        if kept.archived:
            out.print(
                f"the kept checkpoint's row {kept.seq} is archived, not checked here "
                "(give the archives with --archive)"
            )
        elif kept.problem is None:
            out.print(f"the kept checkpoint holds: row {kept.seq} is there, unchanged")
        else:
            err.print(
                f"[bold red]KEPT CHECKPOINT[/]: the log {kept.problem}, but this node had "
                f"logged up to row {kept.seq} ({utc_time(kept.at)} UTC, enquiry-log-state.json)"
            )
    _print_archive_problems(audit)
    for w in audit.witnesses or ():
        _print_witness(w, rows=report.last_seq)
    if audit.token is not None:
        out.print("checkpoint (keep it off this host; verify --expect it later):")
        click.echo(audit.token)
    if code:
        raise SystemExit(code)


async def _recall_witnesses(settings: Settings) -> list[Recalled]:
    from connector.node.node import Node
    from connector.peers.client import PeerClient, peer_session
    from connector.peers.witnesses import recall

    node = Node.from_settings(settings)
    node.load_live()
    peers = sorted(node.live.current_trust().peers.values(), key=lambda p: p.id)
    async with peer_session() as session:
        client = PeerClient(
            session=session, signer=node.signer, node=settings.node, clock=time.time
        )
        # Checkpoints signed by any key the node publishes: over a rotation, old and new.
        return await recall(client, peers, own_keys=list(node.keyring.current.public_keys))


def witness_dict(w: WitnessAudit) -> dict[str, object]:
    """One witness's findings, as `verify --witnesses --json` gives them."""
    return {
        "peer": w.peer,
        "ok": w.ok,
        "error": w.error,
        "checkpoints": w.held,
        "unverifiable": w.unverifiable,
        "newest_seq": None if w.newest is None else w.newest.seq,
        "newest_at": None if w.newest is None else utc_iso(w.newest.iat),
        "last_good_seq": w.last_good,
        "archived": w.archived,
        "mismatches": [
            {"seq": m.seq, "signed_at": utc_iso(m.iat), "problem": m.problem, "log_hash": m.found}
            for m in w.mismatches
        ],
    }


def _print_witness(w: WitnessAudit, *, rows: int) -> None:
    """`rows`: the log's head row number (archived rows count: numbers go on)."""
    if w.error is not None:
        err.print(f"witness {w.peer}: could not be asked: {w.error}")
        return
    if w.newest is None:
        out.print(f"witness {w.peer}: holds no checkpoint of this node yet")
    elif w.ok:
        out.print(
            f"witness {w.peer}: {w.held} checkpoint(s) up to row {w.newest.seq} "
            f"(signed {utc_time(w.newest.iat)}), all held by the log"
        )
    else:
        first = w.mismatches[0]
        when = f"vouched for at {utc_time(first.iat)} UTC"
        if first.found is None:
            what = f"row {first.seq} ({when}) is gone: the log ends at row {rows}. Rows were cut"
        else:
            since = f"after row {w.last_good}" if w.last_good is not None else "before it"
            what = (
                f"row {first.seq} is not the row this node {when}: "
                f"the log was rewritten {since} and by row {first.seq}"
            )
        err.print(
            f"[bold red]WITNESS {w.peer}[/]: {what} "
            f"({len(w.mismatches)} of {w.held} checkpoint(s) fail)"
        )
    if w.archived:
        out.print(
            f"witness {w.peer}: {w.archived} checkpoint(s) of archived rows not checked "
            "(give the archives with --archive)"
        )
    if w.unverifiable:
        out.print(
            f"witness {w.peer}: {w.unverifiable} checkpoint(s) not signed by this node's key "
            "(an earlier key, or the witness's error) were not used"
        )


def archived_part_dict(audit: Audit) -> dict[str, object]:
    """The archived part of the chain, as `verify --json` gives it under "archived"."""
    report, checked = audit.report, audit.archives
    return {
        "base_seq": report.base.seq,
        "base_hash": report.base.hash,
        "checked": checked is not None and checked.ok and report.archived_rows > 0,
        "rows_checked": report.archived_rows,
        "refs_not_checked": report.archived_refs,
        "checkpoint_not_checked": report.checkpoint_archived,
        "files": [] if checked is None else archive_files_list(checked),
        "links": [] if checked is None else list(checked.links),
    }


def archive_files_list(checked: ArchiveCheck) -> list[dict[str, object]]:
    return [
        {
            "file": str(o.path),
            "ok": o.ok,
            "first_seq": None if o.manifest is None else o.manifest.first_seq,
            "last_seq": None if o.manifest is None else o.manifest.last_seq,
            "rows": None if o.manifest is None else o.manifest.rows,
            "problems": list(o.problems),
        }
        for o in checked.files
    ]


def _print_archived(audit: Audit) -> None:
    """Before the chain's verdict: what of the archived rows was checked, or not."""
    report, checked = audit.report, audit.archives
    base = report.base
    if checked is None:
        if base.seq:
            out.print(
                f"rows 1..{base.seq} are archived ({len(base.files)} file(s)) and not checked "
                "here: give them with --archive to check the whole chain"
            )
        if report.archived_refs:
            out.print(
                f"{report.archived_refs} disclosed ref(s) first given by archived rows: "
                "not checked here"
            )
        return
    if checked.part is not None:
        out.print(
            f"archives: {len(checked.files)} file(s), rows 1..{checked.part.last_seq} "
            f"({checked.part.rows} row(s)), every row checked"
        )


def _print_archive_problems(audit: Audit) -> None:
    """After the chain's verdict: each file's problems, naming the row, then the links."""
    checked = audit.archives
    if checked is None:
        return
    for o in checked.files:
        for problem in o.problems:
            err.print(f"[bold red]ARCHIVE[/] {o.path}: {problem}", soft_wrap=True)
    for link in checked.links:
        err.print(f"[bold red]ARCHIVES[/]: {link}", soft_wrap=True)
