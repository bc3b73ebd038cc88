"""The admin audit trail as admins meet it: every command that changes the node leaves one
entry naming who, what and to what; the others leave none; `audit list` and `audit verify`
read it; a restored node's trail says it was restored."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.docs import example
from support.processes import CLI, audit_entries, cli, init, pin_fresh_peer

from connector.trail.entry import Action, os_actor
from connector.trail.file import read_entries, record

RECORDS = "id,number,country,status\nS1,D0000001,DE,stolen\nS2,D0000002,DE,lost\n"


def _me(sudo_user: str | None = None) -> dict[str, Any]:
    euid = os.geteuid()
    actor: dict[str, Any] = {"kind": "os", "name": pwd.getpwuid(euid).pw_name, "uid": euid}
    if sudo_user is not None:
        actor["sudo_user"] = sudo_user
    return actor


class Trail:
    """The trail of one node, read after each command (from the file: a process less per
    command): what the command added."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.path = config.parent / "admin-audit.jsonl"
        self.seen = len(self._entries())

    def _entries(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in read_entries(self.path)]

    def added(self) -> list[dict[str, Any]]:
        entries = self._entries()
        new, self.seen = entries[self.seen :], len(entries)
        return new

    def one(self, *args: str, check: bool = True) -> dict[str, Any]:
        cli(*args, config=self.config, check=check)
        new = self.added()
        assert len(new) == 1, (args, new)
        return new[0]

    def none(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = cli(*args, config=self.config, check=False)
        assert self.added() == [], args
        return done


def test_each_admin_command_records_one_entry_and_the_others_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _, _ = init(tmp_path, "FR")
    (first,) = audit_entries(config)
    assert (first["seq"], first["action"], first["target"]) == (1, "node.initialized", "FR")
    assert first["actor"] == _me()
    trail = Trail(config)

    signer = pin_fresh_peer(config, "DE")
    (peer,) = trail.added()
    assert (peer["action"], peer["target"]) == ("peer.added", "DE")
    assert peer["details"] == {
        "url": "http://127.0.0.1:9",
        "keys": [signer.kid],
        "tls_fingerprint": None,
        "insecure": True,
    }

    added = cli("agencies", "add", "border", "--kind", "border", config=config)
    (agency,) = trail.added()
    assert (agency["action"], agency["target"], agency["details"]) == (
        "agency.added",
        "border",
        {"kind": "border"},
    )
    rotated = trail.one("agencies", "rotate", "border")
    assert (rotated["action"], rotated["target"]) == ("agency.rotated", "border")
    trail_file = config.parent / "admin-audit.jsonl"
    assert added.stdout.strip().encode() not in trail_file.read_bytes()  # never a token
    assert trail.one("agencies", "disable", "border")["action"] == "agency.disabled"
    assert trail.one("agencies", "enable", "border")["action"] == "agency.enabled"

    # Run through sudo: both the user the command ran as and who ran sudo.
    monkeypatch.setenv("SUDO_USER", "alice")
    on = trail.one("maintenance", "on", "--reason", "disk swap")
    assert (on["action"], on["target"], on["details"]) == (
        "maintenance.on",
        "FR",
        {"reason": "disk swap"},
    )
    assert on["actor"] == _me(sudo_user="alice")
    monkeypatch.delenv("SUDO_USER")
    assert trail.one("maintenance", "off")["action"] == "maintenance.off"

    upgraded = trail.one("db", "upgrade")
    assert upgraded["action"] == "databases.upgraded"
    assert upgraded["details"]["records"].startswith("new → ")

    data = tmp_path / "stolen.csv"
    data.write_text(RECORDS)
    imported = trail.one("records", "import", str(data), "--category", "travel_documents")
    assert (imported["action"], imported["target"]) == ("records.imported", "travel_documents")
    assert imported["details"] == {
        "file": str(data.resolve()),
        "inserted": 2,
        "updated": 0,
        "removed": 0,
        "rejected": 0,
        "replace": False,
    }
    removed = trail.one("records", "remove", "travel_documents/S1")
    assert (removed["action"], removed["target"]) == (
        "record.removed",
        "travel_documents/S1",
    )
    reindexed = trail.one("records", "reindex", "--category", "wanted_persons")
    assert (reindexed["action"], reindexed["details"]) == (
        "records.reindexed",
        {"records": {"wanted_persons": 0}},
    )
    assert trail.one("peers", "remove", "DE")["target"] == "DE"
    # Rotations: who published the next key or certificate, which, and when it comes in force.
    key = trail.one("keys", "rotate")
    assert (key["action"], key["target"]) == ("key.rotated", "FR")
    assert set(key["details"]) == {
        "old", "new", "activate_at", "not_after", "activated", "tidied"
    }  # fmt: skip
    assert key["details"]["old"] != key["details"]["new"]
    tls = trail.one("keys", "renew-tls")
    assert (tls["action"], tls["details"]["activated"]) == ("certificate.renewed", False)
    now = trail.one("keys", "renew-tls", "--activate")  # brought forward: recorded too
    assert (now["action"], now["details"]["activated"]) == ("certificate.renewed", True)
    assert trail.none("keys", "rotate").returncode == 2  # a rotation is under way: nothing
    data.write_text(RECORDS.replace("S1,D0000001,DE,stolen\n", ""))

    # What changes nothing records nothing: reading, and commands that fail or find
    # nothing to do.
    for args in (
        ("peers", "list"),
        ("agencies", "list"),
        ("maintenance", "status"),
        ("records", "stats"),
        ("records", "show", "travel_documents/S2"),
        ("db", "status"),
        ("config", "check"),
        ("policy", "check"),
        ("audit", "verify"),
        ("enquiries", "list"),
        ("records", "import", str(data), "--category", "travel_documents"),  # all unchanged
        ("db", "upgrade"),  # already there
        ("maintenance", "off"),  # was off
    ):
        assert trail.none(*args).returncode in (0, 1), args
    for args in (
        ("peers", "remove", "XX"),
        ("agencies", "rotate", "nobody"),
        ("agencies", "add", "bad id!", "--kind", "border"),
        ("records", "remove", "travel_documents/NOPE"),
        ("notifications", "retry", "--dead"),
    ):
        assert trail.none(*args).returncode != 0, args

    entries = audit_entries(config)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert {e["actor"]["name"] for e in entries} == {_me()["name"]}
    verified = json.loads(cli("audit", "verify", "--json", config=config).stdout)
    assert verified == {
        "ok": True,
        "file": str(trail_file),
        "entries": len(entries),
        "head": {"seq": entries[-1]["seq"], "hash": entries[-1]["hash"]},
        "finding": None,
        "line": None,
        "seq": None,
        "problem": None,
        "expect_held": None,
    }


def test_audit_list_filters_and_its_shapes(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    cli("agencies", "add", "border-police-of-a-long-name", "--kind", "border", config=config)
    cli("maintenance", "on", "--reason", "a reason long enough to wrap " * 3, config=config)
    entries = audit_entries(config)
    assert [e["action"] for e in entries] == ["node.initialized", "agency.added", "maintenance.on"]
    for e in entries:
        assert set(e) == {"seq", "at", "actor", "action", "target", "details", "prev", "hash"}
        assert e["at"].endswith("Z")
        assert len(e["at"]) == len("2027-01-01T00:00:00.000Z")
    only = json.loads(
        cli("audit", "list", "--action", "maintenance.on", "--json", config=config).stdout
    )
    assert [e["seq"] for e in only] == [3]
    later = json.loads(
        cli("audit", "list", "--since", "2999-01-01", "--json", config=config).stdout
    )
    assert later == []
    assert (
        "no changes recorded" in cli("audit", "list", "--since", "2999-01-01", config=config).stdout
    )
    for columns in (80, 120):
        table = subprocess.run(
            [*CLI, "audit", "list", "--config", str(config)],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": str(columns)},
            timeout=60,
            check=True,
        ).stdout
        assert "maintenance.on" in table
        assert max(len(line) for line in table.splitlines()) <= columns
    bad = cli("audit", "list", "--action", "peer.eaten", config=config, check=False)
    assert bad.returncode == 2
    assert "peer.added" in bad.stderr  # the choices are listed


def test_audit_verify_names_the_broken_line_and_exits_by_what_it_found(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    for n in range(3):
        cli("agencies", "add", f"a{n}", "--kind", "border", config=config)
    ok = cli("audit", "verify", config=config)
    head = audit_entries(config)[-1]
    assert f"ok: 4 entries, head 4:{head['hash']}" in ok.stdout
    assert "holds" in cli("audit", "verify", "--expect", f"4:{head['hash']}", config=config).stdout

    path = config.parent / "admin-audit.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b'"a0"', b'"zz"') + b"".join(lines[2:]))
    broken = cli("audit", "verify", config=config, check=False)
    assert broken.returncode == 1
    assert "BROKEN (edited): line 2 (seq 2) was edited" in broken.stderr
    found = json.loads(cli("audit", "verify", "--json", config=config, check=False).stdout)
    assert (found["ok"], found["finding"], found["line"], found["seq"]) == (False, "edited", 2, 2)
    assert found["head"] == {"seq": 1, "hash": json.loads(lines[0])["hash"]}

    path.write_bytes(b"".join(lines[:3]))  # the last entry cut off
    assert cli("audit", "verify", config=config).returncode == 0
    cut = cli("audit", "verify", "--expect", f"4:{head['hash']}", config=config, check=False)
    assert cut.returncode == 1
    assert "entries were cut from its end" in cut.stderr

    path.unlink()
    path.mkdir()  # a trail that cannot be read
    unreadable = cli("audit", "verify", config=config, check=False)
    assert unreadable.returncode == 2
    assert f"cannot read {path}" in unreadable.stderr
    refused = cli("agencies", "add", "late", "--kind", "border", config=config, check=False)
    assert refused.returncode == 2
    assert "the change was made, but not recorded in the admin audit trail" in refused.stderr


def test_a_restored_node_keeps_the_archived_trail_and_records_its_restore(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    cli("agencies", "add", "border", "--kind", "border", config=config)
    created = json.loads(
        cli("backup", "create", str(tmp_path / "archives"), "--json", config=config).stdout
    )
    before = audit_entries(config)
    assert [e["action"] for e in before] == ["node.initialized", "agency.added", "backup.created"]
    assert before[-1]["target"] == created["archive"]
    # The manifest vouches for the trail as it was when the archive was made.
    assert created["admin_audit"] == {"seq": 2, "hash": before[1]["hash"]}
    checked = json.loads(
        cli("backup", "verify", created["archive"], "--json", config=config).stdout
    )
    assert checked["admin_audit"] == created["admin_audit"]

    monkey_env = {**os.environ, "SUDO_USER": "carol", "COLUMNS": "200"}
    restore = subprocess.run(
        [*CLI, "backup", "restore", created["archive"], "--to", str(tmp_path / "restored")],
        capture_output=True,
        text=True,
        env=monkey_env,
        timeout=60,
        check=True,
    )
    restored_config = tmp_path / "restored" / "connector.yaml"
    assert f"audit verify --config {restored_config} --expect 2:{before[1]['hash']}" in (
        restore.stdout
    )
    after = audit_entries(restored_config)
    assert after[:2] == before[:2]  # the archive's trail, as it was
    assert len(after) == 3
    last = after[2]
    assert (last["seq"], last["action"], last["target"]) == (
        3,
        "backup.restored",
        str(Path(created["archive"]).resolve()),
    )
    assert last["actor"] == _me(sudo_user="carol")
    assert last["details"]["node"] == "FR"
    assert last["details"]["backed_up_at"] == created["created_at"]
    assert last["details"]["trail_seq"] == 2
    held = cli(
        "audit", "verify", "--expect", f"2:{before[1]['hash']}", "--json", config=restored_config
    )
    assert json.loads(held.stdout)["expect_held"] is True


def test_the_documented_entry_has_the_fields_a_recorded_one_has(tmp_path: Path) -> None:
    """docs/operations.md §13 shows one entry: a real one, recorded through sudo, has the
    same fields (the doc's hashes are cut short with …)."""
    documented = json.loads(example("operations.md", "audit-entry"))
    path = tmp_path / "admin-audit.jsonl"
    record(
        path,
        actor=os_actor(euid=os.geteuid(), environ={"SUDO_USER": "alice"}),
        action=Action(documented["action"]),
        target=documented["target"],
        details=documented["details"],
        now=0.0,
    )
    (real,) = [e.to_json() for e in read_entries(path)]
    assert list(real) == list(documented)
    assert list(real["actor"]) == list(documented["actor"])
    assert real["details"] == documented["details"]
