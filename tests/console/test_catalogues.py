"""The console's messages: every one in the templates is in the catalogue template, every
language translates each (with the same placeholders), and the compiled file that ships is
the one its .po compiles to."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from connector.console.i18n import DOMAIN, LOCALE_DIR, load_catalogues

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "connector" / "console" / "templates"
LANGUAGES = sorted(p.name for p in LOCALE_DIR.iterdir() if (p / "LC_MESSAGES").is_dir())


def _extracted() -> set[str]:
    found = extract_from_dir(
        str(TEMPLATES),
        method_map=[("**.html", "jinja2")],
        options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
    )
    return {msg if isinstance(msg, str) else msg[0] for _, _, msg, _, _ in found}


def test_the_template_catalogue_holds_every_message() -> None:
    with open(LOCALE_DIR / f"{DOMAIN}.pot", "rb") as fh:
        pot = {m.id for m in read_po(fh) if m.id}
    # Out of date: pybabel extract (docs/console.md, "Languages").
    assert pot == _extracted()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_language_translates_every_message(lang: str) -> None:
    po_path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    with open(po_path, "rb") as fh:
        po = {m.id: m.string for m in read_po(fh) if m.id}
    assert set(po) == _extracted()
    compiled = load_catalogues()[lang]
    assert isinstance(compiled, gettext.GNUTranslations)
    for msgid, text in po.items():
        assert isinstance(msgid, str)
        assert isinstance(text, str)
        assert text, f"{lang}: {msgid!r} untranslated"
        assert sorted(re.findall(r"%\(\w+\)s", text)) == sorted(re.findall(r"%\(\w+\)s", msgid))
        # Out of date: pybabel compile -d connector/console/locale -D console.
        assert compiled.gettext(msgid) == text, msgid


def test_french_is_offered() -> None:
    assert {"en", "fr"} <= set(load_catalogues())
