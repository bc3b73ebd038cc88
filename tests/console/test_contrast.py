"""The console's colours keep WCAG AA contrast (4.5:1 for text) for every pair of text and
background its style sheet sets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[2] / "connector" / "console" / "static" / "console.css"


def _variables() -> dict[str, str]:
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", CSS.read_text()))


def _colour(value: str) -> str:
    found = re.fullmatch(r"var\(--([\w-]+)\)", value)
    value = _variables()[found.group(1)] if found else value
    if re.fullmatch(r"#[0-9a-fA-F]{3}", value):  # #fff is #ffffff
        value = "#" + "".join(c * 2 for c in value[1:])
    return value


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(_colour(a)), _luminance(_colour(b))), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _rule(selector: str) -> dict[str, str]:
    body = re.search(re.escape(selector) + r"\s*\{([^}]*)\}", CSS.read_text())
    assert body is not None, selector
    return dict(re.findall(r"([\w-]+):\s*([^;]+);", body.group(1)))


@pytest.mark.parametrize(
    ("selector", "background"),
    [
        ("body", None),
        (".top", None),
        (".status.hit, .status.error", None),
        (".status.no_hit, .status.answered, .status.approved, .status.released", None),
        (".status.denied, .status.partial, .status.expired, .status.pending", None),
        ("button", None),
    ],
)
def test_text_on_its_background(selector: str, background: str | None) -> None:
    rule = _rule(selector)
    fg = rule["color"].strip()
    bg = (background or rule["background"]).strip()
    assert contrast(fg, bg) >= 4.5, (selector, fg, bg)


def test_other_text_on_the_page() -> None:
    paper = _variables()["paper"]
    for name in ("ink", "muted", "link", "bad", "good"):
        assert contrast(_variables()[name], paper) >= 4.5, name
    assert contrast("#ffffff", _colour(_rule(".status.error")["background"])) >= 4.5
    assert contrast(_colour(_rule(".warn-text")["color"]), paper) >= 4.5
    # Links in the navigation bar, and the current page's (bar colour on white).
    assert contrast("#ffffff", _variables()["bar"]) >= 4.5
