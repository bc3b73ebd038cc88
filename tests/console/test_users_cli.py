"""`ncb-connector users`, as an admin runs it: accounts made, listed, changed and disabled,
each change in the admin audit trail, never a password or a secret printed or recorded."""

from __future__ import annotations

import json
from pathlib import Path

from support.processes import audit_entries, cli, init


def test_users_commands(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    made = cli(
        "users",
        "add",
        "ada",
        "--role",
        "admin",
        "--password-stdin",
        config=config,
        input="a long passphrase\n",
    )
    assert "account ada (admin) added" in made.stderr
    with_totp = cli(
        "users",
        "add",
        "bob",
        "--role",
        "approver",
        "--totp",
        "--password-stdin",
        config=config,
        input="bob's long passphrase\n",
    )
    assert with_totp.stdout.startswith("otpauth://totp/")
    assert "issuer=ncb-connector%20FR" in with_totp.stdout
    short = cli(
        "users",
        "add",
        "vic",
        "--role",
        "viewer",
        "--password-stdin",
        config=config,
        input="short\n",
        check=False,
    )
    assert short.returncode == 2
    assert "at least 12 characters" in short.stderr
    taken = cli(
        "users",
        "add",
        "ada",
        "--role",
        "viewer",
        "--password-stdin",
        config=config,
        input="a long passphrase\n",
        check=False,
    )
    assert taken.returncode == 2
    cli(
        "users",
        "passwd",
        "bob",
        "--no-totp",
        "--password-stdin",
        config=config,
        input="bob's new passphrase\n",
    )
    cli("users", "disable", "ada", config=config)
    listed = json.loads(cli("users", "list", "--json", config=config).stdout)
    assert [(u["name"], u["role"], u["enabled"], u["second_factor"]) for u in listed] == [
        ("ada", "admin", False, False),
        ("bob", "approver", True, False),
    ]
    assert set(listed[0]) == {
        "name",
        "role",
        "enabled",
        "second_factor",
        "created_at",
        "password_changed_at",
        "disabled_at",
    }
    assert listed[1]["password_changed_at"] is not None
    table = cli("users", "list", config=config).stdout
    assert "disabled" in table
    assert "passphrase" not in table
    missing = cli("users", "disable", "nobody", config=config, check=False)
    assert missing.returncode == 2
    assert "users list" in missing.stderr
    trail = [(e["action"], e["target"], e["details"]) for e in audit_entries(config)]
    assert trail[-4:] == [
        ("user.added", "ada", {"role": "admin", "second_factor": False}),
        ("user.added", "bob", {"role": "approver", "second_factor": True}),
        ("user.password_changed", "bob", {"second_factor": False}),
        ("user.disabled", "ada", {}),
    ]
    assert "passphrase" not in Path(config.parent / "admin-audit.jsonl").read_text()


def test_config_check_reads_the_accounts_file(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    cli("config", "check", config=config)  # no accounts file: nobody may log in, which is fine
    users = config.parent / "console-users.json"
    users.write_text('{"accounts": [{"name": "ada", "role": "superuser"}]}')
    broken = cli("config", "check", config=config, check=False)
    assert broken.returncode == 2
    assert "not a valid accounts file" in broken.stderr
    assert "role" in broken.stderr
