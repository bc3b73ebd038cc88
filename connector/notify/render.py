"""Notices as a duty officer reads them: a subject line and a plain-text body (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connector.notify.notice import Notice

PRODUCT = "ncb-connector"
MAX_VALUE = 200  # characters of one foreign-supplied value shown before it is cut
MAX_SUBJECT_REFS = 3

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_STATUS_WORDS = {"hit": "HIT", "no_hit": "no hit", "denied": "DENIED", "error": "ERROR"}


def notice_text(notice: Notice) -> tuple[str, str]:
    """(subject, plain-text body) of a notice. Never raises on a body missing fields."""
    if notice.kind == "enquiry":
        return _enquiry(notice)
    if notice.kind == "digest":
        return _digest(notice)
    if notice.kind == "approval":
        return _approval(notice)
    if notice.kind == "release":
        return _release(notice)
    return _test(notice)


# --- values ---------------------------------------------------------------------------


def clean(value: object, *, limit: int = MAX_VALUE) -> str:
    """One value on one line: control characters (a peer could send newlines to forge
    lines of the notice) become spaces, long values are cut, None is "-"."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, Mapping):
        text = ", ".join(f"{clean(k)}={clean(v)}" for k, v in value.items())
    elif isinstance(value, list | tuple):
        text = ", ".join(clean(v) for v in value)
    else:
        text = str(value)
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text or "-"


def _get(body: Mapping[str, Any], key: str) -> Any:
    return body.get(key) if isinstance(body, Mapping) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _when(value: Any) -> str:
    """ISO strings are shown as given; epoch seconds become UTC ISO 8601."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
        except (OverflowError, OSError, ValueError):
            return clean(value)
    return clean(value)


def _labelled(rows: Iterable[tuple[str, object]], *, indent: str = "") -> list[str]:
    rows = list(rows)
    width = max((len(label) for label, _ in rows), default=0) + 1
    return [f"{indent}{(label + ':').ljust(width)} {clean(value)}" for label, value in rows]


def _prefix(node: object) -> str:
    return f"[{PRODUCT} {clean(node)}]" if node else f"[{PRODUCT}]"


def _plural(n: object, one: str, many: str) -> str:
    return f"{clean(n)} {one if n == 1 else many}"


# --- kinds ----------------------------------------------------------------------------


def _refs_text(refs: Sequence[str]) -> str:
    shown = ", ".join(clean(r) for r in refs[:MAX_SUBJECT_REFS])
    more = len(refs) - MAX_SUBJECT_REFS
    return shown + (f" (+{more} more)" if more > 0 else "")


def _outcome(checks: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    statuses = {str(_get(c, "status")) for c in checks}
    refs: list[str] = []
    for c in checks:
        for ref in _list(_get(c, "matched")):
            if str(ref) not in refs:
                refs.append(str(ref))
    for status in ("hit", "denied", "error"):
        if status in statuses:
            return _STATUS_WORDS[status], refs
    return ("no hit" if statuses <= {"no_hit"} and checks else "?"), refs


def _enquiry(notice: Notice) -> tuple[str, str]:
    body = notice.body
    node = _get(body, "node")
    asked_by = _mapping(_get(body, "asked_by"))
    peer = clean(_get(asked_by, "node"))
    checks = [_mapping(c) for c in _list(_get(body, "checks"))]
    categories: list[str] = []
    for c in checks:
        cat = clean(_get(c, "category"))
        if cat not in categories:
            categories.append(cat)
    about = ", ".join(categories) or "nothing"
    label, refs = _outcome(checks)
    if refs:
        label = (
            f"{label} {_refs_text(refs)}"
            if label == "HIT"
            else f"{label}, matched {_refs_text(refs)}"
        )
    subject = f"{_prefix(node)} {peer} asked about {about}: {label}"

    lines = [f"{peer} asked {clean(node)} about {about}. Outcome: {label}.", ""]
    lines += _labelled(
        [
            ("Enquiry", _get(body, "enquiry") or notice.enquiry),
            ("At", _when(_get(body, "at"))),
            ("Asked by", peer),
            ("Agency kind", _get(asked_by, "agency_kind")),
            ("User", _get(asked_by, "sub")),
            ("Purpose", _get(asked_by, "purpose")),
            ("Case", _get(asked_by, "case")),
        ]
    )
    for n, c in enumerate(checks, 1):
        status = str(_get(c, "status"))
        lines += [
            "",
            f"Check {n} of {len(checks)} (id {clean(_get(c, 'id'))}): {clean(_get(c, 'category'))}",
        ]
        criteria = _mapping(_get(c, "criteria"))
        if criteria:
            lines.append("  Criteria:")
            width = max(len(clean(k)) for k in criteria) + 1
            lines += [
                f"    {(clean(k) + ':').ljust(width)} {clean(v)}" for k, v in criteria.items()
            ]
        else:
            lines.append("  Criteria: -")
        matched = [clean(r) for r in _list(_get(c, "matched"))]
        lines += _labelled(
            [
                ("Outcome", _STATUS_WORDS.get(status, clean(status))),
                ("Answered level", _get(c, "answered_level")),
                ("Deciding rule", _get(c, "rule") or "(none: default deny)"),
                ("Matched", ", ".join(matched) if matched else "-"),
            ],
            indent="  ",
        )
        if matched and status != "hit":
            lines.append("  Note: matching records exist, but the answer did not reveal them.")
    why = [clean(w) for w in _list(_get(body, "why_notified"))]
    lines += ["", "Why you are notified:"]
    lines += [f"  - {w}" for w in why] or ["  -"]
    lines += ["", f"Notice {clean(notice.id)} on channel {clean(notice.channel)}."]
    return subject, "\n".join(lines) + "\n"


def _counts(title: str, counts: Mapping[str, Any]) -> list[str]:
    rows = sorted(
        ((clean(k), v) for k, v in counts.items()),
        key=lambda kv: (-(kv[1] if isinstance(kv[1], int) else 0), kv[0]),
    )
    if not rows:
        return [f"{title}: none"]
    width = max(len(k) for k, _ in rows)
    return [f"{title}:"] + [f"  {k.ljust(width)}  {clean(v).rjust(6)}" for k, v in rows]


def _digest(notice: Notice) -> tuple[str, str]:
    body = notice.body
    node = _get(body, "node")
    enquiries, hits, denials = (_get(body, k) or 0 for k in ("enquiries", "hits", "denials"))
    since, until = _when(_get(body, "since")), _when(_get(body, "until"))
    subject = (
        f"{_prefix(node)} digest: {_plural(enquiries, 'enquiry', 'enquiries')}, "
        f"{_plural(hits, 'hit', 'hits')}, {_plural(denials, 'denial', 'denials')} "
        f"since {since}"
    )
    lines = [f"Foreign enquiries to {clean(node)} from {since} until {until}.", ""]
    lines += _labelled([("Enquiries", enquiries), ("Hits", hits), ("Denials", denials)])
    lines += ["", *_counts("By peer", _mapping(_get(body, "by_peer")))]
    lines += ["", *_counts("By category", _mapping(_get(body, "by_category")))]
    lines += ["", f"Notice {clean(notice.id)} on channel {clean(notice.channel)}."]
    return subject, "\n".join(lines) + "\n"


def _approval(notice: Notice) -> tuple[str, str]:
    """An approval waiting (or about to expire): who asked, which records, until when, and
    the command that decides it. The records' fields stay on the node."""
    body = notice.body
    node = _get(body, "node")
    asked_by = _mapping(_get(body, "asked_by"))
    peer = clean(_get(asked_by, "node"))
    refs = [str(r) for r in _list(_get(body, "refs"))]
    reminder = _get(body, "type") == "approval_reminder"
    what = "expires soon" if reminder else "waits for an approver"
    subject = f"{_prefix(node)} approval {what}: {peer} asked, {_refs_text(refs)}"
    lines = [
        f"A release to {peer} {what}: nothing beyond hit or no hit leaves until an "
        "approver decides.",
        "",
    ]
    lines += _labelled(
        [
            ("Approval", _get(body, "approval")),
            ("Enquiry", _get(body, "enquiry") or notice.enquiry),
            ("Asked by", peer),
            ("Agency kind", _get(asked_by, "agency_kind")),
            ("User", _get(asked_by, "sub")),
            ("Purpose", _get(asked_by, "purpose")),
            ("Case", _get(asked_by, "case")),
            ("Records", ", ".join(clean(r) for r in refs) or "-"),
            ("Rules", _list(_get(body, "rules"))),
            ("Expires", _when(_get(body, "expires_at"))),
        ]
    )
    approval = clean(_get(body, "approval"))
    lines += [
        "",
        f"Decide: ncb-connector approvals show {approval}, then approvals approve (or deny) "
        f"{approval} --reason '...'. Undecided, it is denied as expired.",
        "",
        f"Notice {clean(notice.id)} on channel {clean(notice.channel)}.",
    ]
    return subject, "\n".join(lines) + "\n"


def _release(notice: Notice) -> tuple[str, str]:
    """A release an agency's check waited for has come: where to read it, not what it says
    (the agency reads the records through its own authenticated API)."""
    body = notice.body
    node = _get(body, "node")
    peer = clean(_get(body, "peer"))
    state = clean(_get(body, "state"))
    check = clean(_get(body, "check"))
    subject = f"{_prefix(node)} {peer} {state} the release check {check} waited for"
    lines = _labelled(
        [
            ("Check", check),
            ("Agency", _get(body, "agency")),
            ("Peer", peer),
            ("Approval", _get(body, "approval")),
            ("State", state),
            ("At", _when(_get(body, "at"))),
        ]
    )
    lines += [
        "",
        f"Read it: GET /local/v1/checks/{check} with the agency's token.",
        "",
        f"Notice {clean(notice.id)} on channel {clean(notice.channel)}.",
    ]
    return subject, "\n".join(lines) + "\n"


def _test(notice: Notice) -> tuple[str, str]:
    node = _get(notice.body, "node")
    subject = f"{_prefix(node)} test notice on channel {clean(notice.channel)}"
    text = (
        f"Test notice {clean(notice.id)} from {clean(node)} on channel "
        f"{clean(notice.channel)}, created {_when(notice.created_at)}: "
        f"this channel works.\n"
    )
    return subject, text
