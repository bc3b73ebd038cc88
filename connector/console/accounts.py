"""Operator console accounts: roles, Argon2 password hashes and TOTP secrets in a JSON file,
re-read by the running node when it changes."""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import orjson
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.errors import ConfigError, NotFound, field_problems
from connector.storage.files import atomic_write

ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
MIN_PASSWORD = 12
_HASHER = PasswordHasher()  # argon2id, the library's RFC 9106 low-memory profile


class Role(StrEnum):
    """What an account may do; each role may do what the ones before it may."""

    VIEWER = "viewer"  # sees every page
    APPROVER = "approver"  # also decides approvals
    ADMIN = "admin"  # also changes peers, agencies, notices and maintenance

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    name: str
    role: Role
    password_hash: str
    totp_secret: str | None
    created_at: float
    password_changed_at: float | None = None
    disabled_at: float | None = None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


def check_account_name(name: str) -> str:
    if not ACCOUNT_NAME.match(name):
        raise ConfigError(
            f"account name {name!r}: use 1 to 32 lower-case letters, digits, '.', '_' or '-',"
            " starting with a letter"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check_password(password))


def password_matches(account: Account | None, password: str) -> bool:
    """Whether `password` is the account's. An unknown account costs one hash as well, so
    the time taken does not tell which names exist."""
    target = account.password_hash if account is not None else _DUMMY_HASH
    try:
        ok = _HASHER.verify(target, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and account is not None


_DUMMY_HASH = _HASHER.hash("not an account's password")


def totp_matches(account: Account, code: str, *, now: float) -> bool:
    """The account's current TOTP code (or the one 30 s either side: a clock a little off);
    true when the account has no second factor."""
    if account.totp_secret is None:
        return True
    return pyotp.TOTP(account.totp_secret).verify(code.strip(), for_time=now, valid_window=1)


def totp_uri(account: Account, node: str) -> str:
    """What an authenticator app reads (as a QR code or typed): `otpauth://totp/…`."""
    if account.totp_secret is None:
        raise ConfigError(f"account {account.name} has no second factor")
    return pyotp.TOTP(account.totp_secret).provisioning_uri(
        name=account.name, issuer_name=f"ncb-connector {node}"
    )


# --- the file ---------------------------------------------------------------------------------


class _AccountEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=ACCOUNT_NAME.pattern)
    role: Role
    password_hash: str = Field(pattern=r"^\$argon2")
    totp_secret: str | None = Field(default=None, pattern=r"^[A-Z2-7]{16,128}$")
    created_at: datetime
    password_changed_at: datetime | None = None
    disabled_at: datetime | None = None


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accounts: list[_AccountEntry] = Field(default_factory=list)


def _ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def load_accounts(path: Path) -> dict[str, Account]:
    """Read the accounts file; a missing file means nobody may log in."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        parsed = _File.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not a valid accounts file: not JSON ({exc})") from exc
    except ValidationError as exc:
        reasons = "; ".join(f"{p.field}: {p.reason}" for p in field_problems(exc))
        raise ConfigError(f"{path}: not a valid accounts file: {reasons}") from exc
    out: dict[str, Account] = {}
    for e in parsed.accounts:
        if e.name in out:
            raise ConfigError(f"{path}: account {e.name} is listed twice")
        out[e.name] = Account(
            name=e.name,
            role=e.role,
            password_hash=e.password_hash,
            totp_secret=e.totp_secret,
            created_at=_ts(e.created_at) or 0.0,
            password_changed_at=_ts(e.password_changed_at),
            disabled_at=_ts(e.disabled_at),
        )
    return out


def save_accounts(path: Path, accounts: Mapping[str, Account]) -> None:
    doc = {
        "accounts": [
            {
                "name": a.name,
                "role": a.role.value,
                "password_hash": a.password_hash,
                "totp_secret": a.totp_secret,
                "created_at": _iso(a.created_at),
                "password_changed_at": _iso(a.password_changed_at),
                "disabled_at": _iso(a.disabled_at),
            }
            for a in sorted(accounts.values(), key=lambda a: a.name)
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # TOTP secrets are secrets: 0600, like the agencies' file and the keys.
    atomic_write(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n", mode=0o600)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[dict[str, Account]]:
    """Read-modify-write under a lock, so two admins' commands never lose each other's edit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        accounts = load_accounts(path)
        yield accounts
        save_accounts(path, accounts)


def add_account(
    path: Path, name: str, role: Role, password: str, *, totp: bool, now: float
) -> Account:
    check_account_name(name)
    password_hash = hash_password(password)
    with _locked(path) as accounts:
        if name in accounts:
            raise ConfigError(f"account {name} exists already (change its password instead)")
        account = Account(
            name=name,
            role=role,
            password_hash=password_hash,
            totp_secret=pyotp.random_base32(32) if totp else None,
            created_at=now,
        )
        accounts[name] = account
    return account


def change_password(
    path: Path, name: str, password: str, *, totp: bool | None, now: float
) -> Account:
    """A new password (which enables a disabled account again); `totp`: True gives the
    account a new second factor, False removes it, None keeps what it has."""
    password_hash = hash_password(password)
    with _locked(path) as accounts:
        old = _get(accounts, name)
        secret = old.totp_secret
        if totp is not None:
            secret = pyotp.random_base32(32) if totp else None
        account = replace(
            old,
            password_hash=password_hash,
            totp_secret=secret,
            password_changed_at=now,
            disabled_at=None,
        )
        accounts[name] = account
    return account


def disable_account(path: Path, name: str, *, now: float) -> Account:
    with _locked(path) as accounts:
        account = replace(_get(accounts, name), disabled_at=now)
        accounts[name] = account
    return account


def _get(accounts: Mapping[str, Account], name: str) -> Account:
    account = accounts.get(name)
    if account is None:
        raise NotFound(f"no account {name}; `ncb-connector users list` shows them", account=name)
    return account


class AccountDirectory:
    """The node's view of the accounts file: re-read whenever the file changes (a stat() per
    login and per request), so `users disable` ends the account's sessions at their next
    request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._accounts: dict[str, Account] = {}

    def current(self) -> Mapping[str, Account]:
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._accounts = load_accounts(self.path) if stamp is not None else {}
            self._stamp = stamp
        return self._accounts

    def get(self, name: str) -> Account | None:
        return self.current().get(name)
