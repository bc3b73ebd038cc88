"""The docs' code blocks, and comparing an output a doc shows with the one a command gives."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.S | re.M)
_MARKER = re.compile(r"<!-- [\w -]*example: ([\w-]+) -->\s*$")
_GENERATED = re.compile(r"<!-- BEGIN GENERATED .*?<!-- END GENERATED [^>]*-->", flags=re.S)


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """One fenced block of a doc: its language, text, line, and the name the line before it
    gives it (`<!-- example: NAME -->`), which the test comparing it uses."""

    doc: str
    lang: str
    text: str
    line: int
    name: str | None
    generated: bool

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text(encoding="utf-8")
    generated = [m.span() for m in _GENERATED.finditer(text)]
    found = []
    for m in _BLOCK.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        found.append(
            Block(
                doc=doc.name,
                lang=m[1],
                text=m[2],
                line=text[: m.start()].count("\n") + 1,
                name=marker[1] if marker else None,
                generated=any(a <= m.start() < b for a, b in generated),
            )
        )
    return found


def example(doc: str, name: str) -> str:
    """The text of the block of `doc` named `name`."""
    (found,) = [b for b in blocks(DOCS / doc) if b.name == name]
    return found.text


# What differs between a doc's example and a real run: times, row numbers, ids, hashes,
# keys, paths. The words around them are what the comparison holds the code to.
_VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?"), "<time>"),
    (re.compile(r"(?<![\w/])/[\w./+-]+"), "<path>"),
    (re.compile(r"\b01[0-9A-HJKMNP-TV-Z]{2,24}…?"), "<id>"),  # ULIDs, whole or cut short
    (re.compile(r"(?<![\w-])[\w-]{43}(?![\w-])"), "<key>"),  # JWK thumbprints
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{4,}…?"), "<hex>"),
    (re.compile(r"\d+"), "<n>"),
]


def masked(text: str) -> str:
    for pattern, token in _VARYING:
        text = pattern.sub(token, text)
    return text


def assert_shows(doc: str, name: str, real: str) -> None:
    """Every line of the doc's example is a line of the real output, but for what varies
    between runs (`masked`)."""
    got = {masked(line.rstrip()) for line in real.splitlines()}
    for line in example(doc, name).splitlines():
        assert masked(line.rstrip()) in got, (
            f"docs/{doc} example {name!r} shows a line no real run gives:\n{line}\n"
            f"real output:\n{real}"
        )


def abridged(text: str) -> Any:
    """A doc's abridged JSON (`{…}`, `[…]`, `, …` for what is left out) as JSON."""
    text = re.sub(r"\{…\}", "{}", text)
    text = re.sub(r"\[…\]", "[]", text)
    text = re.sub(r",\s*…\s*,", ",", text)
    return orjson.loads(re.sub(r",\s*…\s*(?=[\]}])", "", text))


def keys_shown(shown: Any, real: Any, where: str) -> None:
    """Every member the doc shows is one the real document has, all the way down."""
    if isinstance(shown, dict):
        assert isinstance(real, dict), where
        assert set(shown) <= set(real), (where, set(shown) - set(real))
        for key, value in shown.items():
            keys_shown(value, real[key], f"{where}.{key}")
    elif isinstance(shown, list) and shown and isinstance(shown[0], dict):
        assert isinstance(real, list), where
        members = {k for item in real for k in item}
        for item in shown:
            assert set(item) <= members, (where, set(item) - members)
