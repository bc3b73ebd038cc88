"""The operator console in tests: a node's connector.yaml given a console listener, accounts
made as `users add` makes them, and logging in through the real login form."""

from __future__ import annotations

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
