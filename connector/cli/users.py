"""`ncb-connector users`: the operator console's accounts, their roles and passwords."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.table import Table

from connector.cli.common import (
    _json,
    config_option,
    enum_values,
    err,
    handles_errors,
    json_option,
    out,
    record_change,
)
from connector.cli.render import utc_time
from connector.console.accounts import (
    Account,
    Role,
    add_account,
    change_password,
    disable_account,
    load_accounts,
    totp_uri,
)
from connector.enquiries.entry import utc_iso
from connector.settings.config import Settings, load_settings
from connector.trail.entry import Action

password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of asking for it.",
)


def _users_file(settings: Settings) -> Path:
    return settings.state_path(settings.console.users_file)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    text: str = click.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
    return text


def _show_totp(settings: Settings, account: Account) -> None:
    if account.totp_secret is not None:
        err.print(
            "add this to the operator's authenticator app (shown only now; the console asks "
            "for its 6-digit code at each login):"
        )
        click.echo(totp_uri(account, settings.node))


def account_dict(a: Account) -> dict[str, object]:
    def iso(ts: float | None) -> str | None:
        return utc_iso(ts) if ts else None

    return {
        "name": a.name,
        "role": a.role.value,
        "enabled": a.enabled,
        "second_factor": a.totp_secret is not None,
        "created_at": iso(a.created_at),
        "password_changed_at": iso(a.password_changed_at),
        "disabled_at": iso(a.disabled_at),
    }


@click.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(enum_values(Role)),
    help="viewer: sees every page; approver: also decides approvals; admin: also changes "
    "peers, agencies, notices and maintenance.",
)
@click.option("--totp", is_flag=True, help="Ask for an authenticator's code at each login.")
@password_stdin
@config_option
@handles_errors
def users_add(name: str, role: str, totp: bool, password_stdin: bool, config_path: Path) -> None:
    """Make a console account with a role (asks for its password).

    The password needs 12 characters or more. Exit status: 0 made; 2 a bad name, a short
    password, or the name is taken."""
    settings = load_settings(config_path)
    account = add_account(
        _users_file(settings),
        name,
        Role(role),
        _password(password_stdin),
        totp=totp,
        now=time.time(),
    )
    record_change(
        settings,
        Action.USER_ADDED,
        account.name,
        role=account.role.value,
        second_factor=totp,
    )
    err.print(f"account {account.name} ({account.role.value}) added")
    _show_totp(settings, account)


@click.command("passwd")
@click.argument("name")
@click.option(
    "--totp/--no-totp",
    default=None,
    help="Give the account a new authenticator secret, or remove it; unset: keep it.",
)
@password_stdin
@config_option
@handles_errors
def users_passwd(name: str, totp: bool | None, password_stdin: bool, config_path: Path) -> None:
    """Set an account's password (and enable it again); --totp, --no-totp.

    A disabled account is enabled again. Exit status: 0 changed; 2 no such account, or a
    short password."""
    settings = load_settings(config_path)
    account = change_password(
        _users_file(settings), name, _password(password_stdin), totp=totp, now=time.time()
    )
    record_change(
        settings,
        Action.USER_PASSWORD_CHANGED,
        account.name,
        second_factor=account.totp_secret is not None,
    )
    err.print(f"account {account.name}: password changed")
    if totp:
        _show_totp(settings, account)


@click.command("disable")
@click.argument("name")
@config_option
@handles_errors
def users_disable(name: str, config_path: Path) -> None:
    """Refuse an account's logins and end its sessions.

    A running node re-reads the accounts file at the account's next request; `users passwd`
    enables it again. Exit status: 0 disabled; 2 no such account."""
    settings = load_settings(config_path)
    account = disable_account(_users_file(settings), name, now=time.time())
    record_change(settings, Action.USER_DISABLED, account.name)
    out.print(f"account {account.name} disabled")


@click.command("list")
@config_option
@json_option
@handles_errors
def users_list(config_path: Path, as_json: bool) -> None:
    """Accounts, their roles and state (never a password or a secret).

    \b
    --json: [{"name", "role", "enabled", "second_factor", "created_at",
    "password_changed_at", "disabled_at"}], times in ISO 8601 UTC or null."""
    settings = load_settings(config_path)
    rows = sorted(load_accounts(_users_file(settings)).values(), key=lambda a: a.name)
    if as_json:
        _json([account_dict(a) for a in rows])
        return
    table = Table("account", "role", "state", "second factor", "created (UTC)", "password set")
    for a in rows:
        table.add_row(
            a.name,
            a.role.value,
            "enabled" if a.enabled else "[red]disabled[/]",
            "yes" if a.totp_secret else "no",
            utc_time(a.created_at),
            utc_time(a.password_changed_at) if a.password_changed_at else "-",
        )
    out.print(table if rows else "no accounts: `ncb-connector users add NAME --role ROLE`")
