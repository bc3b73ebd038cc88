"""How enquiries and answers look to a person (tables) and to a script (JSON)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from connector.enquiries.entry import LoggedEntry, utc_iso
from connector.records.fingerprints.iso19794 import FINGER_NAMES

if TYPE_CHECKING:  # their modules bring aiohttp, which a command listing agencies need not load
    from connector.approvals.awaiting import Awaited
    from connector.approvals.model import Approval
    from connector.outbound.fanout import PeerOutcome
    from connector.outbound.national import NationalResult
    from connector.peers.client import Exchange
    from connector.protocol import HitClaims


def utc_time(ts: float) -> str:
    """A time as tables show it: UTC, to the second."""
    return utc_iso(ts)[:19].replace("T", " ")


def shown(value: object) -> str:
    """A record's value as a person reads it: lists joined, yes/no, nested values flattened;
    never Python's repr (`['RU']`, `True`)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return "/".join(shown(v) for v in value) or "-"
    if isinstance(value, dict):
        return "; ".join(f"{k} {shown(v)}" for k, v in value.items()) or "-"
    return str(value)


def folded(table: Table) -> Table:
    """Long values wrap within their cells, never cut short with an ellipsis: an id, a ref
    or a fingerprint is copied or compared whole."""
    for column in table.columns:
        column.overflow = "fold"
    return table


WIDE = 120
"""Columns from which a table stays a table however long its cells: they wrap."""


def fit(table: Table, console: Console) -> RenderableType:
    """The table when each row fits the console on one line, or when the console is wide
    (`WIDE` columns or more: long cells wrap within their column); else each row as a block
    of `column  value` lines, one blank line between rows: on an 80-column terminal a
    fingerprint or a reason stays whole on its line instead of folding into a sliver of a
    column. Piped output (240 columns) keeps the table, a row per line, for grep."""
    if console.width >= WIDE:
        return table
    unbounded = console.options.update_width(100_000)  # a row's width, unwrapped
    if Measurement.get(console, unbounded, table).maximum <= console.width:
        return table
    cells = [list(column.cells) for column in table.columns]
    blocks: list[RenderableType] = [table.title] if isinstance(table.title, str) else []
    for index in range(table.row_count):
        block = Table.grid(padding=(0, 2))
        block.add_column(style="bold", no_wrap=True)
        block.add_column(overflow="fold")
        for column, values in zip(table.columns, cells, strict=True):
            header = column.header if isinstance(column.header, str) else ""
            block.add_row(header.replace("\n", " "), values[index])
        blocks += [block, ""] if index < table.row_count - 1 else [block]
    return Group(*blocks)


_STATUS_STYLE = {"hit": "bold red", "no_hit": "green", "denied": "yellow", "error": "magenta"}


def entry_dict(row: LoggedEntry, *, with_token: bool = False) -> dict[str, Any]:
    e = row.entry
    out: dict[str, Any] = {
        "seq": row.seq,
        "id": e.id,
        "at": utc_iso(e.at),
        "direction": e.direction,
        "peer": e.peer,
        "sub": e.sub,
        "agency_kind": e.agency_kind,
        "purpose": e.purpose,
        "case": e.case_ref,
        "decision": e.decision,
        "rules": list(e.rules),
        "policy_digest": e.policy_digest,
        "checks": list(e.checks),
        "results": list(e.results),
        "hit_refs": list(e.hit_refs),
        "answer_digest": e.answer_digest,
        "error": e.error,
        "hash": row.hash,
        "prev_hash": row.prev_hash,
    }
    if with_token:
        out["query_token"] = e.query_token
    return out


def enquiries_table(rows: list[LoggedEntry], title: str | None = None) -> Table:
    table = folded(
        Table(
            "#",
            "id",
            "time (UTC)",
            "dir",
            "peer",
            "purpose",
            "decision",
            "rule",
            "hits",
            title=title,
        )
    )
    for r in rows:
        e = r.entry
        cats = ", ".join(str(c.get("category")) for c in e.checks)
        rules = ", ".join(sorted(set(e.rules))) or "-"
        decision = e.decision if e.error is None else f"error: {e.error[:40]}"
        style = {"denied": "yellow", "error": "magenta"}.get(e.decision, "")
        decision = escape(decision)
        table.add_row(
            str(r.seq),
            e.id,
            utc_iso(e.at)[:23].replace("T", " "),
            e.direction,
            e.peer,
            escape(f"{e.purpose or '-'}\n{cats}"),
            f"[{style}]{decision}[/]" if style else decision,
            escape(rules),
            escape("\n".join(e.hit_refs) or "-"),
        )
    return table


def answer_table(exchange: Exchange) -> Table:
    a = exchange.answer
    table = folded(
        Table(
            "check",
            "status",
            "level",
            "ref",
            "record / reason",
            title=escape(
                f"{a.iss} answered in {exchange.elapsed * 1000:.0f} ms (their enquiry {a.enquiry})"
            ),
        )
    )
    for r in a.results:
        style = _STATUS_STYLE.get(r.status, "")
        status = f"[{style}]{r.status}[/]"
        # A no_hit the peer searched without some criteria says less than it seems to.
        unused = f" (not searched by: {', '.join(r.unused_criteria)})" if r.unused_criteria else ""
        if not r.hits:
            note = (r.reason or "") + unused
            if r.retry_after is not None:
                note += f" (retry after {r.retry_after:.0f} s)"
            # Everything a peer wrote is shown as text, never read as markup.
            table.add_row(escape(r.check), status, r.level.value, "-", escape(note))
        for h in r.hits:
            record = ", ".join(f"{k}={shown(v)}" for k, v in h.record.items()) or "(hit only)"
            record += _dna_match(h.reasons) + _examiner(h) + unused
            table.add_row(escape(r.check), status, r.level.value, escape(h.ref), escape(record))
    return table


def _dna_match(reasons: Sequence[Any] | None) -> str:
    """A DNA hit's match, as its reasons give it (protocol.md §6.4); "" for any other hit."""
    first = reasons[0] if reasons else None
    if not (isinstance(first, Mapping) and "loci_compared" in first):
        return ""
    where = f" at {first['locus']}" if first.get("locus") else ""
    return f"; {first.get('match')} match{where}, {first['loci_compared']} loci compared"


def _examiner(hit: HitClaims) -> str:
    """A fingerprint hit is a candidate for an examiner (protocol.md §7.3), with its finger
    and bozorth3 score where the level shows them; "" for any other hit."""
    if not (hit.model_extra or {}).get("verification_required"):
        return ""
    first = hit.reasons[0] if hit.reasons else None
    if isinstance(first, Mapping) and "bozorth3" in first:
        finger = first.get("finger")
        named = FINGER_NAMES[finger] if isinstance(finger, int) and 0 <= finger <= 10 else "?"
        return f"; candidate for an examiner: {named}, bozorth3 score {first['bozorth3']}"
    return "; candidate for an examiner"


_OUTCOME_STYLE = {
    **_STATUS_STYLE,
    "unreachable": "dim",
    "timeout": "dim yellow",
    "answered": "green",
    "waiting": "dim",
}


def fanout_table(
    check_ids: list[str],
    peers: list[str],
    outcomes: Mapping[str, PeerOutcome],
    national: Sequence[NationalResult] = (),
    title: str | None = None,
) -> Table:
    """A row per peer, a column per check; rows fill in as peers answer."""
    table = folded(Table("peer", *check_ids, "ms", "answer / why", title=title))

    def cell(status: str, hits: int = 0) -> str:
        style = _OUTCOME_STYLE.get(status, "")
        text = f"{status} ({hits})" if hits else status
        return f"[{style}]{text}[/]" if style else text

    if national:
        table.add_row(
            "[bold]national[/]",
            *(cell(r.status, len(r.hits)) for r in national),
            "",
            escape(", ".join(h.ref for r in national for h in r.hits)),
        )
    for peer in peers:
        o = outcomes.get(peer)
        if o is None:
            table.add_row(peer, *(cell("waiting") for _ in check_ids), "", "")
            continue
        refs = ", ".join(h.ref for c in o.checks for h in c.hits)
        note = (
            refs or (o.detail or "")
            if o.status != "answered"
            else refs or (f"enquiry {o.enquiry}" if o.enquiry else "")
        )
        table.add_row(
            peer,
            *(cell(c.status, len(c.hits)) for c in o.checks),
            "" if o.elapsed_ms is None else f"{o.elapsed_ms:.0f}",
            escape(note),
        )
    return table


_APPROVAL_STYLE = {"pending": "yellow", "approved": "green", "denied": "red", "expired": "red"}


def approvals_table(rows: Sequence[Approval]) -> Table:
    """Approvals one a line: what waits (or was decided), for whom, about which records."""
    table = folded(
        Table(
            "approval",
            "state",
            "asked by",
            "user",
            "records",
            "rules",
            "asked (UTC)",
            "expires / decided (UTC)",
        )
    )
    for a in rows:
        style = _APPROVAL_STYLE.get(a.state, "")
        when = a.expires_at if a.decision is None else a.decision.at
        table.add_row(
            a.id,
            f"[{style}]{a.state}[/]",
            a.peer,
            escape(a.sub),
            ", ".join(a.refs),
            escape(", ".join(a.rules)),
            utc_time(a.created_at),
            utc_time(when),
        )
    return table


_AWAITED_STYLE = {"pending": "yellow", "released": "green", "denied": "red", "expired": "red"}


def awaited_table(rows: Sequence[Awaited]) -> Table:
    """Releases this node waits for from peers, one a line: which peer's approval, for
    which agency's check, since when and until when."""
    table = folded(
        Table("peer", "approval", "state", "agency", "check", "since (UTC)", "expires (UTC)")
    )
    for a in rows:
        style = _AWAITED_STYLE.get(a.state, "")
        table.add_row(
            a.peer,
            a.approval,
            f"[{style}]{a.state}[/]" if style else a.state,
            escape(a.agency),
            escape(a.request),
            utc_time(a.created_at),
            utc_time(a.expires_at),
        )
    return table


def approval_lines(a: Approval) -> list[str]:
    """One approval in full, as an approver reads it before deciding: who asked and why,
    what they asked, the records that would be released, the rule that holds them."""
    lines = [
        f"approval   {a.id}  [{_APPROVAL_STYLE.get(a.state, '')}]{a.state}[/]",
        f"enquiry    {a.enquiry} (enquiries show {a.enquiry})",
        f"asked by   {a.peer}, {escape(a.sub)} ({a.agency_kind}), purpose {a.purpose}, "
        f"case {escape(a.case_ref or '-')}",
        f"asked      {utc_time(a.created_at)} UTC",
        f"expires    {utc_time(a.expires_at)} UTC (undecided: denied as expired)",
    ]
    if a.decision is not None:
        d = a.decision
        who = "the approvals job" if d.operator is None else d.operator.shown
        lines.append(
            f"decided    {d.verdict} by {escape(who)} at {utc_time(d.at)} UTC: {escape(d.reason)}"
        )
    for h in a.held:
        lines += [
            "",
            f"check {escape(h.check)}: {h.category.value}, rule {escape(h.rule)!r} releases "
            f"level {h.level.value}",
            "  asked:  " + escape(shown(dict(h.shown_criteria))),
        ]
        for hit in h.shown_hits:
            lines.append(f"  record {escape(str(hit.get('ref')))}")
            record = hit.get("record") or {}
            width = max((len(k) for k in record), default=0)
            lines += [f"    {k.ljust(width)}  {escape(shown(v))}" for k, v in record.items()]
    return lines
