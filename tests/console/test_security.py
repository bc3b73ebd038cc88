"""The console's defences, against a real node's console listener: session ids made only at
login, cookie flags, CSRF tokens, login limits, roles checked on the server, everything a
peer or a record supplies escaped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs as capture_logs_
from support.console import (
    PASSWORDS,
    add_accounts,
    browser,
    console_url,
    csrf,
    field,
    login,
    with_console,
)
from support.network import configure as demo_configure
from support.network import load
from support.processes import audit_entries

from connector.demo import DemoNode, network
from connector.outbound.agencies import add_agency, load_agencies
from connector.outbound.request import Request
from connector.protocol import Check
from connector.vocabulary import AgencyKind, Category, Purpose

Net = dict[str, DemoNode]


def _configure(**console: Any) -> Callable[[str, Path], None]:
    def configure(node_id: str, directory: Path) -> None:
        demo_configure(node_id, directory)
        if node_id == "DE":
            with_console(directory, **console)

    return configure


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    async with network(tmp_path, ["FR", "DE"], configure=_configure(login_failures=3)) as n:
        load(n)
        add_accounts(n["DE"])
        s = n["DE"].node.settings
        add_agency(s.state_path(s.federation.agencies_file), "border-1", AgencyKind.BORDER, now=0.0)
        yield n


def _set_cookies(resp: Any) -> dict[str, Any]:
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return dict(jar)


async def test_login_gives_a_new_session_id_with_strict_cookie_flags(net: Net) -> None:
    base = console_url(net["DE"])
    async with browser() as http:
        # An id planted before the login (session fixation) is not the one the login gives.
        http.cookie_jar.update_cookies({"ncb_console": "planted-by-an-attacker"})
        resp = await login(http, base, "vic")
        first = _set_cookies(resp.history[0])["ncb_console"]
        assert first.value != "planted-by-an-attacker"
        assert first["httponly"] is True
        assert first["samesite"] == "Strict"
        assert not first["secure"]  # plain HTTP on loopback: a Secure cookie would be lost
        assert resp.status == 200
        assert str(resp.url).endswith("/")
        # Logging in again gives another id and ends the first.
        again = await login(http, base, "vic")
        second = _set_cookies(again.history[0])["ncb_console"].value
        assert second != first.value
    async with browser() as other:
        other.cookie_jar.update_cookies({"ncb_console": first.value})
        resp = await other.get(f"{base}/enquiries", allow_redirects=False)
        assert resp.status == 303
        assert resp.headers["Location"].startswith("/login")


async def test_security_headers_and_no_page_without_a_session(net: Net) -> None:
    base = console_url(net["DE"])
    async with browser() as http:
        for path in ("/", "/enquiries", "/peers", "/policy", "/agencies", "/events"):
            resp = await http.get(f"{base}{path}", allow_redirects=False)
            assert resp.status == 303, path
            assert resp.headers["Location"].startswith("/login")
        page = await http.get(f"{base}/login")
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Cache-Control"] == "no-store"
        # DNS rebinding: a page reached through another site's name is refused.
        rebound = await http.get(f"{base}/login", headers={"Host": "evil.example"})
        assert rebound.status == 421
        assert "console.hosts" in await rebound.text()
        named = await http.get(f"{base}/login", headers={"Host": "localhost:1"})
        assert named.status == 200
        # A POST without a session changes nothing and says why.
        resp = await http.post(f"{base}/agencies/border-1/disable", data={"csrf": "x"})
        assert resp.status == 403


async def test_forms_without_the_sessions_csrf_token_are_refused(net: Net) -> None:
    base = console_url(net["DE"])
    s = net["DE"].node.settings
    agencies = s.state_path(s.federation.agencies_file)
    async with browser() as ada, browser() as other:
        await login(ada, base, "ada")
        await login(other, base, "ada")
        others_token = await csrf(other, base)
        for data in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": others_token}):
            resp = await ada.post(f"{base}/agencies/border-1/disable", data=data)
            assert resp.status == 403, data
            assert "form_expired" in await resp.text()
        assert load_agencies(agencies)["border-1"].enabled
        # The login form too: its token is bound to the visitor's cookie.
        async with browser() as fresh:
            resp = await fresh.post(
                f"{base}/login", data={"name": "ada", "password": PASSWORDS["ada"]}
            )
            assert resp.status == 403
        # With its own token the same form works.
        resp = await ada.post(
            f"{base}/agencies/border-1/disable", data={"csrf": await csrf(ada, base)}
        )
        assert resp.status == 200
        assert not load_agencies(agencies)["border-1"].enabled


async def _lock_out(base: str) -> None:
    async with browser() as http:
        for _ in range(3):
            resp = await login(http, base, "bob", "not bob's password")
            assert resp.status == 401
            assert "Wrong name, password or code." in await resp.text()
        # Locked: the right password is refused too, and no session is given.
        resp = await login(http, base, "bob")
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) > 0
        assert "ncb_console" not in _set_cookies(resp)
        # The address has failed three times as well: every account is refused from it.
        resp = await login(http, base, "ada")
        assert resp.status == 429


async def test_failed_logins_lock_the_account_then_the_address(net: Net) -> None:
    base = console_url(net["DE"])
    config = net["DE"].node.settings.base_dir / "connector.yaml"
    with capture_logs_() as logged:
        await _lock_out(base)
    codes = [(e["account"], e["code"]) for e in logged if e["event"] == "console_login_refused"]
    assert codes == [("bob", "password")] * 3 + [("bob", "locked"), ("ada", "locked")]
    refused = [e for e in audit_entries(config) if e["action"] == "console.login_refused"]
    assert [(e["target"], e["details"]["reason"]) for e in refused] == [("bob", "password")] * 3
    assert refused[0]["actor"] == {"kind": "console", "name": "bob"}


async def test_a_viewer_cannot_act_whatever_the_form_says(net: Net) -> None:
    base = console_url(net["DE"])
    s = net["DE"].node.settings
    config = s.base_dir / "connector.yaml"
    async with browser() as vic:
        await login(vic, base, "vic")
        page = await vic.get(f"{base}/agencies")
        html = await page.text()
        assert "border-1" in html
        assert "/agencies/border-1/disable" not in html
        token = field(html, "csrf")  # the logout form's: a valid token of this session
        for path in (
            "/agencies/border-1/disable",
            "/agencies/border-1/rotate",
            "/maintenance",
            "/notifications/retry",
        ):
            resp = await vic.post(
                f"{base}{path}", data={"csrf": token, "role": "admin", "switch": "on"}
            )
            assert resp.status == 403, path
            assert "not_allowed" in await resp.text()
    assert load_agencies(s.state_path(s.federation.agencies_file))["border-1"].enabled
    assert net["DE"].node.live.maintenance is None
    actions = [e["action"] for e in audit_entries(config)]
    assert "agency.disabled" not in actions
    assert "maintenance.on" not in actions


async def test_peer_and_record_strings_are_escaped(net: Net) -> None:
    base = console_url(net["DE"])
    script = "<script>alert(1)</script>"
    request = Request(
        agency="ncb",
        agency_kind=AgencyKind.NCB,
        sub='ncb/"><img src=x onerror=alert(2)>',
        purpose=Purpose.CRIMINAL_INVESTIGATION,
        case="<b>case</b>",
        checks=(
            Check(
                id="0",
                category=Category.WANTED_PERSONS,
                criteria={"last_name": script, "first_name": "Иван", "birth_date": "1980-02"},
            ),
        ),
    )
    async with net["FR"].node.desk() as desk:
        exchange = await desk.ask(request, "DE")
    enquiry = exchange.answer.enquiry
    async with browser() as vic:
        await login(vic, base, "vic")
        for path in ("/", "/enquiries", f"/enquiries/{enquiry}"):
            html = await (await vic.get(f"{base}{path}")).text()
            assert "<script>alert" not in html, path
            assert "<img src=x" not in html, path
            assert "<b>case</b>" not in html, path
        html = await (await vic.get(f"{base}/enquiries/{enquiry}")).text()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html or "\\u003cscript" in html
        assert "&lt;b&gt;case&lt;/b&gt;" in html
        assert "&lt;img src=x onerror=alert(2)&gt;" in html
        # A link off the console after login is never followed.
        resp = await login(vic, base, "vic")
        page = await vic.get(f"{base}/login?next=//evil.example/")
        assert field(await page.text(), "next") == "/"
        assert resp.status == 200


async def test_a_disabled_account_loses_its_session(net: Net) -> None:
    from connector.console.accounts import disable_account

    base = console_url(net["DE"])
    s = net["DE"].node.settings
    async with browser() as bob:
        await login(bob, base, "bob")
        assert (await bob.get(f"{base}/peers", allow_redirects=False)).status == 200
        disable_account(s.state_path(s.console.users_file), "bob", now=net["DE"].node.clock())
        resp = await bob.get(f"{base}/peers", allow_redirects=False)
        assert resp.status == 303
        resp = await login(bob, base, "bob")
        assert resp.status == 401


async def test_beyond_loopback_the_console_is_tls_and_its_cookies_secure(
    tmp_path: Path,
) -> None:
    async with network(tmp_path, ["FR", "DE"], configure=_configure(tls=True)) as n:
        add_accounts(n["DE"])
        base = console_url(n["DE"])
        assert base.startswith("https://")
        async with browser() as http:
            page = await http.get(f"{base}/login")
            assert _set_cookies(page)["ncb_console_login"]["secure"] is True
            resp = await login(http, base, "vic")
            assert _set_cookies(resp.history[0])["ncb_console"]["secure"] is True


async def test_an_account_with_a_second_factor_needs_its_code(net: Net) -> None:
    import pyotp

    from connector.console.accounts import Role, add_account

    s = net["DE"].node.settings
    ana = add_account(
        s.state_path(s.console.users_file),
        "ana",
        Role.VIEWER,
        PASSWORDS["ada"],
        totp=True,
        now=0.0,
    )
    assert ana.totp_secret is not None
    base = console_url(net["DE"])
    async with browser() as http:
        resp = await login(http, base, "ada", code="")  # ada has none: no code needed
        assert resp.status == 200
    async with browser() as http:
        page = await http.get(f"{base}/login")
        form = {
            "login_token": field(await page.text(), "login_token"),
            "name": "ana",
            "password": PASSWORDS["ada"],
        }
        resp = await http.post(f"{base}/login", data={**form, "code": ""})
        assert resp.status == 401
        code = pyotp.TOTP(ana.totp_secret).now()
        resp = await http.post(f"{base}/login", data={**form, "code": code})
        assert resp.status == 200
        assert str(resp.url).endswith("/")
