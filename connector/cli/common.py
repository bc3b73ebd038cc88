"""What every command shares: the consoles, error handling, the --config option, settings, JSON."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from connector.errors import AuditTrailError, ConnectorError
from connector.logs import configure_logging
from connector.settings.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, Settings, load_settings
from connector.trail.entry import TRAIL_FILE, Action, Detail, os_actor
from connector.trail.file import record
from connector.vocabulary import AgencyKind, Category, Purpose

F = TypeVar("F", bound=Callable[..., Any])


def enum_values(enum: type[StrEnum]) -> list[str]:
    """An enum's values in their order, for click.Choice (given the enum itself, click would
    list and take its members' names)."""
    return [member.value for member in enum]


_HELD = sorted(enum_values(Category))  # sorted, as --help has always listed them


# emoji=False: ":CD:" inside a fingerprint must not become a picture of a disc.
def _console(*, stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Piped output is for grep and scripts: a table's row stays on one line, not wrapped
    # at the 80 columns rich assumes without a terminal.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 240
    return Console(stderr=stderr, highlight=False, emoji=False, width=width)


out = _console(stderr=False)
err = _console(stderr=True)


# Exit statuses of the commands that ask peers (query, search), one meaning for both so that a
# script can trust them; each command's --help and docs/operations.md §8 say the same.
EXIT_NOTHING_FOUND = 0
EXIT_BAD_INPUT = 2
EXIT_HIT = 3
EXIT_INCOMPLETE = 4


# The short code of a failure that is no ConnectorError (those carry their own), by exit status.
_FAILURE_CODES = {EXIT_BAD_INPUT: "bad_input", EXIT_INCOMPLETE: "incomplete", 130: "interrupted"}


def _wants_json() -> bool:
    """True inside a command run with --json: its failures are JSON documents too."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and bool(ctx.params.get("as_json"))


def error_document(
    message: str, *, code: str, hint: str | None = None, details: list[str] | None = None
) -> dict[str, Any]:
    """What a command run with --json prints on stdout when it fails, whatever failed
    (docs/operations.md §8): a short code a script can test, the message a person reads,
    what to do when the message does not say it, and one line per problem of a file."""
    return {"error": {"code": code, "message": message, "hint": hint, "details": details or []}}


def _fail(
    message: str,
    code: int = EXIT_BAD_INPUT,
    *,
    hint: str | None = None,
    error_code: str | None = None,
    details: list[str] | None = None,
) -> None:
    """Say what failed (a JSON error document under --json) and exit with `code`."""
    if _wants_json():
        short = error_code or _FAILURE_CODES.get(code, "failed")
        _json(error_document(message, code=short, hint=hint, details=details))
        raise SystemExit(code)
    lines = details or [message]
    for line in lines[:-1]:
        err.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
    said = f"{lines[-1]} ({hint})" if hint else lines[-1]
    err.print(f"[bold red]error:[/] {escape(said)}", soft_wrap=True)
    raise SystemExit(code)


def handles_errors(fn: F) -> F:
    """Known failures print one clear line and exit non-zero; never a traceback. Logging
    says warnings only until the command's settings say more."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Here, not in `main`: the group runs for `ncb-connector GROUP --help` too, which
        # should not pay for importing structlog.
        configure_logging(fmt="auto", level="warning")
        try:
            return fn(*args, **kwargs)
        except ConnectorError as exc:
            # A file with several problems: one line each, as an editor jumps to them.
            lines = exc.extra.get("errors")
            if isinstance(lines, list) and lines and all(isinstance(x, str) for x in lines):
                _fail(exc.detail, error_code=exc.code, details=lines)
            _fail(exc.detail, error_code=exc.code)
        except SQLAlchemyError as exc:
            # Busy or damaged databases: say which, without the driver's quoted rows.
            orig = getattr(exc, "orig", None)
            text = str(orig or type(exc).__name__)
            busy = "locked" in text or "busy" in text.lower()
            hint = "is another command or the node holding it?" if busy else None
            _fail(f"database error: {text}", error_code="database", hint=hint)
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def config_option(fn: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        envvar=CONFIG_ENV,
        default=DEFAULT_CONFIG_PATH,
        show_default=True,
        show_envvar=True,
        help="The node's connector.yaml.",
    )(fn)


def _settings(config_path: Path, *, service: bool = False) -> Settings:
    """Settings, with logging as configured for the service, or warnings only for a
    command an admin types (its outcome is printed; info events would only be noise)."""
    settings = load_settings(config_path)
    if service:
        configure_logging(fmt=settings.logging.format, level=settings.logging.level)
    else:
        # A person at a terminal reads console lines even where the service logs JSON for
        # the journal; a script piping the output still gets JSON ("auto").
        configure_logging(fmt="auto", level="warning")
    return settings


def _json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode())


def _pseudonym(agency: str, node: Any) -> str:
    """`sub` must never be a person's name (protocol §6), and logins often are: a keyed hash
    of the login (the node's own key), stable, so the NCB can tell who asked from its log
    (`ncb-connector` run by that login gives the same value)."""
    import hashlib
    import hmac

    login = os.environ.get("USER") or os.environ.get("LOGNAME") or "cli"
    mac = hmac.new(node.signer.kid.encode(), login.encode(), hashlib.sha256).hexdigest()
    return f"{agency}/u-{mac[:12]}"


def asker_options(fn: F) -> F:
    """Who asks peers and why: the options `query` and `search` share, in this order."""
    for option in reversed(
        (
            click.option(
                "--purpose",
                default="border_control",
                show_default=True,
                type=click.Choice(enum_values(Purpose)),
            ),
            click.option(
                "--agency",
                default="ncb",
                show_default=True,
                help="The national agency asking (outbound policy).",
            ),
            click.option(
                "--agency-kind",
                default="ncb",
                show_default=True,
                type=click.Choice(enum_values(AgencyKind)),
            ),
            click.option(
                "--sub",
                default=None,
                help="Pseudonymous end user, sent to peers (default: AGENCY/ and a keyed hash "
                "of your login, which this node can map back and peers cannot).",
            ),
            click.option("--case", "case_ref", default=None),
        )
    ):
        fn = option(fn)
    return fn


class OldSpelling(click.Option):
    """A hidden option that is another option's name before it took its name today; `dest`
    is that option's parameter (docs/vocabulary.md lists them)."""

    def __init__(self, *args: Any, dest: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dest = dest


def old_spelling(old: str, dest: str, **settings: Any) -> Callable[[F], F]:
    """`old`, an option's name before it took its name today, still taken for `dest` but not
    shown in --help: scripts written with it keep working. The name today wins when both are
    given. Put it among the command's options; `settings` are the option's (its type)."""
    key = f"old_spelling:{dest}"

    def keep(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None and value != ():
            ctx.meta[key] = value
        return value

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            meta = click.get_current_context().meta
            if kwargs.get(dest) in (None, ()) and key in meta:
                kwargs[dest] = meta[key]
            return fn(*args, **kwargs)

        option = click.option(
            old,
            cls=OldSpelling,
            dest=dest,
            expose_value=False,
            hidden=True,
            callback=keep,
            **settings,
        )
        return option(wrapper)  # type: ignore[return-value]

    return decorate


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output (docs/operations.md §17)."
)


def asking_exit(*, hit: bool, complete: bool) -> int:
    """A hit wins (found is found, wherever the rest stood); else whether everyone answered."""
    if hit:
        return EXIT_HIT
    return EXIT_NOTHING_FOUND if complete else EXIT_INCOMPLETE


def record_change(settings: Settings, action: Action, target: str, **details: Detail) -> None:
    """Record, in the node's admin audit trail, a change this command has just made, with the
    OS user who ran it. Called once, after the change took effect: a command that fails
    changed nothing and records nothing. `details`: a small summary, never a secret."""
    try:
        record(
            settings.state_path(TRAIL_FILE),
            actor=os_actor(euid=os.geteuid(), environ=os.environ),
            action=action,
            target=target,
            details=details,
            now=time.time(),
        )
    except AuditTrailError as exc:
        raise AuditTrailError(
            f"the change was made, but not recorded in the admin audit trail: {exc.detail}"
        ) from exc
