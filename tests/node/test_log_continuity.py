"""A log that forgets is refused: at start (missing, empty, another log) and while running."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.databases import DatabaseUrl, run_sql
from support.docs import assert_shows
from support.entries import entry
from support.processes import (
    CLI,
    POLICY,
    audit_entries,
    cli,
    fr_query,
    init,
    pin_fresh_peer,
    post_query,
    readyz,
    wait_for,
    wait_ready,
)

from connector.errors import EnquiryLogForgotten
from connector.node.init import init_node
from connector.node.node import Node
from connector.node.service import Service
from connector.protocol import sign_query
from connector.settings.config import load_settings


class DE:
    """A node DE run as `ncb-connector run`, which trusts FR, whose key the test holds."""

    def __init__(self, tmp: Path) -> None:
        self.config, self.peer, self.local = init(tmp, "DE")
        (self.config.parent / "policies" / "10-test.yaml").write_text(POLICY)
        self.fr = pin_fresh_peer(self.config)
        self.db = self.config.parent / "enquiries.db"
        self.state = self.config.parent / "enquiry-log-state.json"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "NCB_CONNECTOR_CONFIG": str(self.config)}
        self.proc = subprocess.Popen(
            [*CLI, "run", *args], env=env, stderr=subprocess.PIPE, text=True
        )
        wait_ready(self.local, self.proc)
        return self.proc

    def stop(self) -> str:
        """SIGTERM; the node's log lines."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        _, stderr = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, stderr
        return stderr

    def token(self, number: str) -> bytes:
        return sign_query(fr_query(number), self.fr)

    def post(self, token: bytes) -> tuple[int, bytes]:
        return post_query(self.peer, token)


@pytest.fixture
def de(tmp_path: Path) -> Iterator[DE]:
    node = DE(tmp_path)
    yield node
    if node.proc is not None and node.proc.poll() is None:
        node.proc.kill()
        node.proc.wait(timeout=10)


def _remove_log(db: Path) -> None:
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)


def test_a_node_that_logged_refuses_a_missing_log_until_an_admin_says_new_log(de: DE) -> None:
    de.start()
    token = de.token("A1")
    assert de.post(token)[0] == 200
    de.stop()
    kept = json.loads(de.state.read_text())
    assert (kept["node"], kept["seq"]) == ("DE", 1)

    _remove_log(de.db)
    refused = cli("run", config=de.config, check=False)
    assert refused.returncode == 2, refused.stderr
    # One line for the admin, after the node's log events (policy and peers loaded).
    (line,) = [x for x in refused.stderr.splitlines() if not x.startswith("{")]
    assert line.startswith("error: the enquiry log sqlite:///")
    assert "is missing, but this node had logged up to row 1" in line
    assert_shows("operations.md", "log-missing", line)
    assert "ncb-connector run --new-log" in line
    # Nothing listens, and the refusal left no empty log for the next start to take.
    assert not de.db.exists()
    with pytest.raises(urllib.error.URLError):
        de.post(token)
    assert cli("run", config=de.config, check=False).returncode == 2

    assert "--new-log" in cli("run", "--help").stdout
    de.start("--new-log")
    stderr = de.stop()
    events = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    (accepted,) = [e for e in events if e["event"] == "enquiry_log_new_accepted"]
    assert accepted["level"] == "warning"
    assert (accepted["login"], accepted["found"], accepted["kept_seq"]) == (
        getpass.getuser(),
        "is missing",
        1,
    )
    (decision,) = json.loads(de.state.read_text())["new_logs"]
    assert (decision["login"], decision["found"], decision["kept_seq"]) == (
        getpass.getuser(),
        "is missing",
        1,
    )
    assert decision["kept_hash"] == kept["hash"]
    # And the admin audit trail holds the decision, with who took it.
    replaced = audit_entries(de.config)[-1]
    assert (replaced["action"], replaced["target"], replaced["actor"]["name"]) == (
        "enquiry_log.replaced",
        "DE",
        getpass.getuser(),
    )
    assert replaced["details"] == {"found": "is missing", "kept_seq": 1, "kept_hash": kept["hash"]}
    # The new log is this node's log from now on.
    de.start()
    de.stop()


def _not_ready(port: int, config: Path | None = None) -> dict[str, object] | None:
    """The 503 body of /readyz, None while ready; with `config`, the details a token shows."""
    try:
        readyz(port, config)
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            raise
        body: dict[str, object] = json.loads(exc.read())
        return body
    return None


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_running_node_stops_answering_when_its_log_file_goes(de: DE, how: str) -> None:
    de.start()
    before = de.config.parent / "before.db"
    shutil.copy(de.db, before)  # the log as it was: an older copy, without the row to come
    assert de.post(de.token("A1"))[0] == 200
    assert readyz(de.local)["status"] == "ready"
    if how == "removed":
        _remove_log(de.db)
    else:
        os.replace(before, de.db)

    status, body = de.post(de.token("A2"))
    assert status == 503
    problem = json.loads(body)
    assert (problem["code"], problem["status"]) == ("enquiry_log_lost", 503)
    assert "enquiries.db" not in problem["detail"]  # the file is the admin's business
    wait_for(lambda: _not_ready(de.local) is not None)
    state = _not_ready(de.local, de.config)
    assert state is not None
    assert f"was {how}" in str(state["problems"]["enquiry_log"])  # type: ignore[index]
    stderr = de.stop()
    events = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    (lost,) = [e for e in events if e["event"] == "enquiry_log_lost"]
    assert lost["level"] == "error"
    assert lost["reason"].startswith(f"the enquiry log's file was {how}")

    if how == "removed":
        # What the node kept says how far its log went, and no file is there now.
        refused = cli("run", config=de.config, check=False)
        assert refused.returncode == 2
        assert "is missing, but this node had logged up to row 1" in refused.stderr


async def test_an_emptied_or_different_log_is_refused_on_either_backend(
    tmp_path: Path, db_url: DatabaseUrl
) -> None:
    paths = init_node(tmp_path / "DE", node="DE", peer_port=0, local_port=0)
    records, enquiries = db_url("records"), db_url("enquiries")
    paths.config.write_text(
        paths.config.read_text()
        .replace("sqlite:///records.db", records)
        .replace("sqlite:///enquiries.db", enquiries)
    )
    node = Node.from_settings(load_settings(paths.config))
    node.load_live()

    async def started() -> Service:
        service = Service(node, shutdown_timeout=2.0)
        await service.start()
        return service

    service = await started()
    await service.enquiry_log.append(entry(1))
    await service.enquiry_log.append(entry(2))
    await service.stop()

    run_sql(enquiries, "UPDATE enquiries SET hash = 'x' || substr(hash, 2) WHERE seq = 2")
    with pytest.raises(EnquiryLogForgotten, match="does not hold row 2 as this node logged it"):
        await started()
    run_sql(enquiries, "DELETE FROM enquiries")
    with pytest.raises(EnquiryLogForgotten, match="is empty, but this node had logged up to row 2"):
        await started()


async def test_verify_checks_the_log_against_the_checkpoint_kept_beside_it(
    tmp_path: Path,
) -> None:
    """`enquiries verify` does what every start does: rows cut from the end, which leave a
    whole chain, are named against enquiry-log-state.json, without --expect or witnesses."""
    paths = init_node(tmp_path / "DE", node="DE", peer_port=0, local_port=0)
    node = Node.from_settings(load_settings(paths.config))
    node.load_live()
    service = Service(node, shutdown_timeout=2.0)
    await service.start()
    for n in range(1, 4):
        await service.enquiry_log.append(entry(n))
    await service.stop()  # the last checkpoint, row 3, is kept beside the log

    ok = cli("enquiries", "verify", config=paths.config)
    assert "the kept checkpoint holds: row 3 is there, unchanged" in ok.stdout
    run_sql(
        f"sqlite:///{paths.config.parent / 'enquiries.db'}", "DELETE FROM enquiries WHERE seq = 3"
    )
    cut = cli("enquiries", "verify", config=paths.config, check=False)
    assert cut.returncode == 1
    assert "the chain is whole (2 row(s)" in cut.stderr
    assert "KEPT CHECKPOINT: the log does not hold row 3 as this node logged it" in cut.stderr
    assert "checkpoint (keep it off this host" not in cut.stdout
    doc = json.loads(cli("enquiries", "verify", "--json", config=paths.config, check=False).stdout)
    assert doc["ok"] is False
    assert doc["checkpoint"] is None
    assert doc["kept_checkpoint"]["seq"] == 3
    assert doc["kept_checkpoint"]["ok"] is False
