"""The console's languages: gettext catalogues compiled from `locale/LANG/LC_MESSAGES/
console.po`, one file per language, and the one a request is shown in."""

from __future__ import annotations

import gettext
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "console"
DEFAULT = "en"
LANGUAGE_COOKIE = "ncb_console_lang"


def load_catalogues(directory: Path = LOCALE_DIR) -> dict[str, gettext.NullTranslations]:
    """English (the messages as written) and every language with a compiled catalogue."""
    found: dict[str, gettext.NullTranslations] = {DEFAULT: gettext.NullTranslations()}
    for mo in sorted(directory.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")):
        lang = mo.parent.parent.name
        with open(mo, "rb") as fh:
            found[lang] = gettext.GNUTranslations(fh)
    return found


def language_of(request: web.Request, known: Mapping[str, object]) -> str:
    """The cookie the language links set, else the browser's first known language."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen is not None and chosen in known:
        return chosen
    ranked: list[tuple[float, str]] = []
    for part in request.headers.get("Accept-Language", "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower().split("-")[0]
        if lang in known:
            ranked.append((q, lang))
    return max(ranked, key=lambda t: t[0])[1] if ranked else DEFAULT


def template_gettext(t: gettext.NullTranslations) -> tuple[Callable[..., str], Callable[..., str]]:
    """`gettext` and `ngettext` as Jinja's newstyle i18n calls them: the catalogue's text,
    marked safe (it is ours), with `%(name)s` values escaped as they are put in."""

    @pass_context
    def gettext_(context: Context, message: str, **values: Any) -> str:
        text = t.gettext(message)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % values if values else text

    @pass_context
    def ngettext_(context: Context, singular: str, plural: str, n: int, **values: Any) -> str:
        values.setdefault("num", n)
        text = t.ngettext(singular, plural, n)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % values

    return gettext_, ngettext_
