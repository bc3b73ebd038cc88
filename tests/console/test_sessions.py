"""Console sessions and accounts without a node: idle timeout, ids, tokens, roles, hashes."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest

from connector.console.accounts import (
    Role,
    add_account,
    change_password,
    load_accounts,
    password_matches,
    totp_matches,
)
from connector.console.sessions import MAX_SESSIONS_PER_ACCOUNT, Sessions
from connector.errors import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_after_its_idle_time_not_while_used() -> None:
    clock = Clock()
    sessions = Sessions(idle_timeout_s=900, clock=clock)
    s = sessions.start("ada")
    for _ in range(5):  # used every 10 minutes: still alive after 50
        clock.now += 600
        assert sessions.touch(s.id) is not None
    assert sessions.alive(s.id)
    clock.now += 901
    assert not sessions.alive(s.id)
    assert sessions.touch(s.id) is None
    assert len(sessions) == 0


def test_ids_and_tokens_are_fresh_and_capped_per_account() -> None:
    sessions = Sessions(idle_timeout_s=900, clock=Clock())
    made = [sessions.start("ada") for _ in range(MAX_SESSIONS_PER_ACCOUNT + 3)]
    assert len({s.id for s in made}) == len(made)
    assert len({s.csrf for s in made}) == len(made)
    assert len(sessions) == MAX_SESSIONS_PER_ACCOUNT  # the oldest gave way
    assert sessions.touch(made[0].id) is None
    assert sessions.touch(made[-1].id) is not None
    visitor = sessions.new_visitor()
    assert sessions.login_token_ok(visitor, sessions.login_token(visitor))
    assert not sessions.login_token_ok(sessions.new_visitor(), sessions.login_token(visitor))
    assert not sessions.login_token_ok(None, sessions.login_token(visitor))


def test_roles_include_the_ones_before() -> None:
    assert Role.ADMIN.allows(Role.APPROVER)
    assert Role.APPROVER.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.APPROVER)
    assert not Role.APPROVER.allows(Role.ADMIN)


def test_passwords_are_argon2_and_totp_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "console-users.json"
    with pytest.raises(ConfigError, match="12 characters"):
        add_account(path, "ada", Role.ADMIN, "short", totp=False, now=0)
    with pytest.raises(ConfigError, match="account name"):
        add_account(path, "Ada Lovelace", Role.ADMIN, "a long passphrase", totp=False, now=0)
    ada = add_account(path, "ada", Role.ADMIN, "a long passphrase", totp=True, now=0)
    assert ada.password_hash.startswith("$argon2id$")
    assert "a long passphrase" not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert password_matches(ada, "a long passphrase")
    assert not password_matches(ada, "a long passphrasE")
    assert not password_matches(None, "a long passphrase")
    assert ada.totp_secret is not None
    now = 1_800_000_000.0
    code = pyotp.TOTP(ada.totp_secret).at(now)
    assert totp_matches(ada, code, now=now)
    assert totp_matches(ada, code, now=now + 30)  # a clock a step off
    assert not totp_matches(ada, code, now=now + 120)
    assert not totp_matches(ada, str((int(code) + 1) % 1_000_000).zfill(6), now=now)
    changed = change_password(path, "ada", "another passphrase", totp=False, now=5)
    assert changed.totp_secret is None
    assert load_accounts(path)["ada"] == changed
