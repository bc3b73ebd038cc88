"""The command registry: `--help` lists every command without importing it, and truthfully."""

from __future__ import annotations

import subprocess

import click
import pytest
from support.processes import CLI

from connector.cli import COMMANDS, main
from connector.cli.lazy import Lazy, LazyGroup

HEAVY = ("aiohttp", "sqlalchemy", "pydantic", "structlog", "rich", "connector.records")


def _entries() -> list[tuple[str, str, Lazy]]:
    found = []
    for name, entry in COMMANDS.items():
        if isinstance(entry, LazyGroup):
            found += [(name, sub, e) for sub, e in entry.lazy.items() if isinstance(e, Lazy)]
        elif isinstance(entry, Lazy):
            found.append(("", name, entry))
    return found


@pytest.mark.parametrize(("group", "name", "entry"), _entries())
def test_the_registry_says_what_the_command_says(group: str, name: str, entry: Lazy) -> None:
    ctx = click.Context(main)
    holder = main.get_command(ctx, group) if group else main
    assert isinstance(holder, click.Group)
    command = holder.get_command(ctx, name)
    assert isinstance(command, click.Command)
    assert command.name == name
    for width in (20, 45, 80, 200):
        listed = click.Command(name, help=entry.help).get_short_help_str(width)
        assert listed == command.get_short_help_str(width)


@pytest.mark.parametrize("args", [["--help"], ["records", "--help"], ["peers", "--help"]])
def test_help_imports_no_command(args: list[str]) -> None:
    proc = subprocess.run(
        [CLI[0], "-X", "importtime", *CLI[1:], *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert not sorted(m for m in imported if m.startswith(HEAVY))
    assert "Commands:" in proc.stdout


def test_a_mistyped_command_gets_a_suggestion() -> None:
    proc = subprocess.run([*CLI, "records", "shw"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Did you mean 'show'?" in proc.stderr
