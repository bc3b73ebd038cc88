"""Summaries of py-spy's raw (collapsed) stacks: where sampled time goes, by step and function."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")

# Where a request's time goes: a sample counts for the first of these steps found anywhere on its
# stack (the connector's own steps, most specific first) ...
STEPS: tuple[tuple[str, str], ...] = (
    ("enquiry log: group commit (_flush, _write)", r"EnquiryLog\._flush|EnquiryLog\._write"),
    ("enquiry log: replay check (SELECT)", r"EnquiryLog\.seen"),
    ("enquiry log: building the row", r"EnquiryLog\.append|Entry\.|new_enquiry_id"),
    ("logging (structlog)", r"structlog|BoundLogger|PrintLogger|configure_logging"),
    ("record lookup", r"RecordStore\.(search|_lookup)"),
    ("verify: Ed25519 + JWS parse", r"open_envelope|parse_compact|verify_with"),
    ("claims schema (pydantic)", r"parse_query"),
    ("criteria parsing", r"_criteria|parse_criteria|document_criteria"),
    ("policy decision", r"decide_inbound|Answerer\._decide"),
    ("signing the answer", r"sign_answer"),
    ("rest of Answerer.answer", r"Answerer\.answer"),
)
# ... else for the library of its innermost frame.
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("aiohttp request handling", r"aiohttp/"),
    ("TLS (ssl / sslproto)", r"sslproto|ssl\.py"),
    ("event loop and sockets", r"asyncio/"),
)


@dataclass(frozen=True, slots=True)
class Frame:
    func: str
    file: str

    @property
    def name(self) -> str:
        return f"{self.func} ({self.file})"


def parse_frame(text: str) -> Frame:
    m = _FRAME.match(text.strip())
    return Frame(m["func"], m["file"]) if m else Frame(text.strip(), "")


def read_raw(path: Path) -> list[tuple[list[Frame], int]]:
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _LINE.match(line)
        if m:
            out.append(([parse_frame(f) for f in m["stack"].split(";")], int(m["count"])))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    samples: int
    self_time: list[tuple[str, int]]
    inclusive: list[tuple[str, int]]
    buckets: list[tuple[str, int]]


def summarise(stacks: Iterable[tuple[list[Frame], int]], top: int = 20) -> Summary:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = 0
    steps = [(name, re.compile(rx)) for name, rx in STEPS]
    libraries = [(name, re.compile(rx)) for name, rx in LIBRARIES]
    for frames, n in stacks:
        total += n
        if not frames:
            continue
        own[frames[-1].name] += n
        for name in {f.name for f in frames}:
            incl[name] += n
        labels = [f"{f.func} {f.file}" for f in frames]
        buckets[_bucket(labels, steps, libraries)] += n
    return Summary(
        samples=total,
        self_time=own.most_common(top),
        inclusive=incl.most_common(top),
        buckets=buckets.most_common(),
    )


def _bucket(
    labels: list[str],
    steps: list[tuple[str, re.Pattern[str]]],
    libraries: list[tuple[str, re.Pattern[str]]],
) -> str:
    for name, rx in steps:
        if any(rx.search(t) for t in labels):
            return name
    for label in reversed(labels):
        for name, rx in libraries:
            if rx.search(label):
                return name
    return "other"


def render(summary: Summary, *, per_request_us: float | None = None) -> list[str]:
    """Markdown lines; with `per_request_us` each share is also shown as µs of CPU a request."""
    total = max(summary.samples, 1)

    def row(name: str, n: int) -> str:
        us = f" | {per_request_us * n / total:.0f}" if per_request_us else ""
        return f"| {name} | {n / total:.1%}{us} |"

    head = "| | share of samples" + (" | µs a request |" if per_request_us else " |")
    rule = "|---|---:" + ("|---:|" if per_request_us else "|")
    lines = [
        "Where the node's CPU goes (a sample counts for the connector step on its stack, "
        "else for the library of its innermost frame):",
        "",
        head,
        rule,
    ]
    lines += [row(name, n) for name, n in summary.buckets]
    lines += ["", "Functions by self time:", "", "| function | self |", "|---|---:|"]
    lines += [f"| `{name}` | {n / total:.1%} |" for name, n in summary.self_time]
    return lines
