"""The operator console in tests: a node's connector.yaml given a console listener, accounts
made as `users add` makes them, and logging in through the real login form."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from connector.console.accounts import Role, add_account
from connector.demo import DemoNode

PASSWORDS = {
    "ada": "ada's long passphrase",
    "bob": "bob's long passphrase",
    "vic": "vic's long passphrase",
}
ROLES = {"ada": Role.ADMIN, "bob": Role.APPROVER, "vic": Role.VIEWER}


def with_console(directory: Path, **console: Any) -> None:
    """connector.yaml with `listen.console` on a free loopback port, and `console:` settings."""
    path = directory / "connector.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["listen"]["console"] = {"host": "127.0.0.1", "port": 0}
    if console:
        doc["console"] = console
    path.write_text(yaml.safe_dump(doc))


def add_accounts(node: DemoNode) -> None:
    """An admin (ada), an approver (bob) and a viewer (vic)."""
    s = node.node.settings
    for name, role in ROLES.items():
        add_account(
            s.state_path(s.console.users_file),
            name,
            role,
            PASSWORDS[name],
            totp=False,
            now=node.node.clock(),
        )


def console_url(node: DemoNode) -> str:
    scheme = "https" if node.node.settings.console_tls else "http"
    return f"{scheme}://127.0.0.1:{node.service.console_port}"


def field(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m is not None, f"no {name} field in the page"
    return m.group(1)


@asynccontextmanager
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """A client keeping cookies for an IP address host, as a browser does."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        connector=aiohttp.TCPConnector(ssl=False),
    ) as http:
        yield http


async def login(
    http: aiohttp.ClientSession, base: str, name: str, password: str | None = None, code: str = ""
) -> aiohttp.ClientResponse:
    page = await http.get(f"{base}/login")
    token = field(await page.text(), "login_token")
    return await http.post(
        f"{base}/login",
        data={
            "login_token": token,
            "name": name,
            "password": PASSWORDS[name] if password is None else password,
            "code": code,
            "next": "/",
        },
    )


async def csrf(http: aiohttp.ClientSession, base: str, path: str = "/") -> str:
    page = await http.get(f"{base}{path}")
    assert page.status == 200, page.status
    return field(await page.text(), "csrf")


# --- releases that wait for an approver (policies.md, `release: approval`) --------------------

HELD = {"number": "DE1234567", "country": "DE"}  # DE-TD-26-0117 in DE's sample records
HELD_REF = "DE:travel_documents:DE-TD-26-0117"
APPROVAL_POLICY = """\
inbound:
  - name: documents once approved
    from: [FR]
    categories: [travel_documents]
    answer: full
    release: approval
    approval_expires: 1h
    channels: [duty-desk]
  - name: persons for FR
    from: [FR]
    categories: [wanted_persons, vehicles]
    answer: full
outbound:
  - agency: "*"
    to: "*"
"""


def with_approvals(node_id: str, directory: Path) -> None:
    """Every node asks any peer for any agency; DE holds FR's document hits for an
    approver, answers its person and vehicle checks at once, and serves its console. The
    releases are asked for (FR) and expired (DE) every second."""
    (directory / "policies" / "10-demo.yaml").write_text(
        APPROVAL_POLICY if node_id == "DE" else 'outbound:\n  - agency: "*"\n    to: "*"\n'
    )
    config = directory / "connector.yaml"
    config.write_text(
        config.read_text()
        + "notifications:\n  channels:\n    duty-desk:\n      type: log\n"
        + "approvals:\n  check_interval_s: 1\n  poll_interval_s: 1\n"
    )
    if node_id == "DE":
        with_console(directory)


class Agency:
    """A border police agency of FR asking DE through FR's local API."""

    def __init__(self, fr: DemoNode, http: aiohttp.ClientSession) -> None:
        from connector.outbound.agencies import add_agency
        from connector.vocabulary import AgencyKind

        s = fr.node.settings
        self.base = f"http://127.0.0.1:{fr.service.local_port}"
        self.http = http
        _, token = add_agency(
            s.state_path(s.federation.agencies_file), "border", AgencyKind.BORDER, now=0.0
        )
        self.auth = {"Authorization": f"Bearer {token}"}

    async def check(self, criteria: dict[str, str]) -> dict[str, Any]:
        body = {
            "purpose": "border_control",
            "sub": "4711",
            "checks": [{"id": "doc", "category": "travel_documents", "criteria": criteria}],
            "peers": ["DE"],
            "deadline_ms": 5000,
        }
        async with self.http.post(
            f"{self.base}/local/v1/checks", json=body, headers=self.auth
        ) as resp:
            assert resp.status == 200, await resp.text()
            doc: dict[str, Any] = await resp.json()
            return doc

    async def released(self, check_id: str, seconds: float = 15) -> dict[str, Any]:
        """The check once its release is in (FR asks DE for it every second)."""
        doc: dict[str, Any] = {}
        for _ in range(int(seconds * 10)):
            async with self.http.get(
                f"{self.base}/local/v1/checks/{check_id}", headers=self.auth
            ) as resp:
                assert resp.status == 200, await resp.text()
                doc = await resp.json()
            if doc["complete"]:
                return doc
            await asyncio.sleep(0.1)
        raise AssertionError(f"check {check_id} never completed: {doc}")
