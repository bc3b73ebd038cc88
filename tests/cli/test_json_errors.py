"""Every command with --json fails with a JSON document on stdout, never bare text."""

from __future__ import annotations

from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner

from connector.cli import COMMANDS, main
from connector.cli.lazy import Lazy, LazyGroup


def _json_commands() -> list[list[str]]:
    """The command line of every command that has --json, by its words."""
    found: list[list[str]] = []
    ctx = click.Context(main)
    for name, entry in sorted(COMMANDS.items()):
        if isinstance(entry, LazyGroup):
            for sub in sorted(entry.lazy):
                command = entry.get_command(ctx, sub)
                assert command is not None
                if any("--json" in getattr(p, "opts", ()) for p in command.params):
                    found.append([name, sub])
        elif isinstance(entry, Lazy):
            command = main.get_command(ctx, name)
            assert command is not None
            if any("--json" in getattr(p, "opts", ()) for p in command.params):
                found.append([name])
    return found


COMMANDS_WITH_JSON = _json_commands()


def _error(stdout: str) -> dict[str, object]:
    doc = orjson.loads(stdout)  # nothing but the document on stdout
    assert isinstance(doc, dict)
    error = doc["error"]
    assert isinstance(error, dict)
    assert set(error) == {"code", "message", "hint", "details"}
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


def test_every_command_a_script_reads_has_json() -> None:
    names = {" ".join(c) for c in COMMANDS_WITH_JSON}
    for expected in (
        "config check",
        "policy check",
        "db status",
        "records import",
        "records stats",
        "enquiries verify",
        "enquiries list",
        "peers list",
        "peers status",
        "query",
        "search",
    ):
        assert expected in names


@pytest.mark.parametrize("words", COMMANDS_WITH_JSON, ids=" ".join)
def test_a_failing_command_says_so_in_json(words: list[str], tmp_path: Path) -> None:
    """Whatever fails first, a missing argument click refuses or a config that is not
    there, stdout holds one JSON error document and the exit status is not 0."""
    missing = tmp_path / "nowhere" / "connector.yaml"
    result = CliRunner().invoke(main, [*words, "--json", "--config", str(missing)])
    assert result.exit_code != 0, result.output
    error = _error(result.stdout)
    assert error["code"] in {"usage", "config_invalid", "bad_input"}, error


def test_usage_errors_are_json_only_under_json(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["records", "stats", "--bogus", "--json"])
    assert bad.exit_code == 2
    assert _error(bad.stdout) == {
        "code": "usage",
        "message": "No such option '--bogus'.",
        "hint": None,
        "details": [],
    }
    plain = runner.invoke(main, ["records", "stats", "--bogus"])
    assert plain.exit_code == 2
    assert plain.stdout == ""
    assert "No such option" in plain.stderr


def test_a_missing_config_is_a_json_error_that_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "connector.yaml"
    result = CliRunner().invoke(main, ["db", "status", "--json", "--config", str(missing)])
    assert result.exit_code == 2
    error = _error(result.stdout)
    assert error["code"] == "config_invalid"
    message = str(error["message"])
    assert "--config" in message
    assert "NCB_CONNECTOR_CONFIG" in message
    assert "init" in message
