"""A click group that imports a command's module only when that command is run or asked for."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True, slots=True, kw_only=True)
class Lazy:
    """A command not imported yet: where it is, and the short help `--help` lists it with
    (the first sentence of its docstring; tests/cli/test_lazy.py holds the two together)."""

    target: str  # "package.module:attribute"
    help: str


class LazyGroup(click.Group):
    """Commands by name, each a Lazy (imported on first use) or a command at hand (a
    LazyGroup of its own): listing them costs no import of theirs."""

    def __init__(self, *args: Any, lazy: Mapping[str, Lazy | click.Command], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy.get(cmd_name)
        if not isinstance(entry, Lazy):
            return entry
        module, _, attribute = entry.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry.target} is not a click command")
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.NoSuchCommand as exc:
            # click suggests close names from the commands it holds, and it holds none yet.
            raise click.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The whole command line, kept by the outermost group: whether --json was asked
        # decides how a usage error is said, and click parses it after this.
        ctx.meta.setdefault("argv", list(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            # A command run with --json fails with a JSON document even when click refuses
            # its options before it runs: a script reads stdout, whatever went wrong.
            if "--json" not in ctx.meta.get("argv", ()):
                raise
            from connector.cli.common import _json, error_document

            code = "usage" if isinstance(exc, click.UsageError) else "failed"
            _json(error_document(exc.format_message(), code=code))
            raise SystemExit(exc.exit_code) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click lists commands, from the registry's short help."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            entry = self.lazy[name]
            command = click.Command(name, help=entry.help) if isinstance(entry, Lazy) else entry
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
