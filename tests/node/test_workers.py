"""`workers: 2`: two processes serve the peer API on one port, one log, one replay guard, one
/metrics counting them both."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.processes import (
    CLI,
    POLICY,
    cli,
    fr_query,
    init,
    pin_fresh_peer,
    readyz,
    wait_for,
    wait_ready,
)

from connector.errors import ConfigError
from connector.protocol import sign_query
from connector.settings.changes import RELOADABLE
from connector.settings.config import load_settings

# The node's own self-signed certificate: these tests check what it answers, not it.
UNCHECKED_TLS = ssl.create_default_context()
UNCHECKED_TLS.check_hostname = False
UNCHECKED_TLS.verify_mode = ssl.CERT_NONE

# A node of two processes; the test tells them apart by which one holds its connection's
# server side (Linux /proc), so nothing in the node says which answered.
pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="Linux /proc")


class Node:
    """DE run as `ncb-connector run` with `workers: 2`, trusting FR, whose key the test holds."""

    def __init__(self, tmp: Path, policy: str = POLICY, *, extra: str = "") -> None:
        self.config, self.peer, self.local = init(tmp, "DE")
        with self.config.open("a") as f:
            f.write(f"workers: 2\n{extra}")
        (self.config.parent / "policies" / "10-test.yaml").write_text(policy)
        self.fr = pin_fresh_peer(self.config)
        self.log_file = tmp / "node.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "NCB_CONNECTOR_CONFIG": str(self.config)}
        with self.log_file.open("a") as stderr:
            self.proc = subprocess.Popen([*CLI, "run"], env=env, stderr=stderr, text=True)
        wait_ready(self.local, self.proc)

    def pids(self) -> set[int]:
        """The main process and its workers."""
        assert self.proc is not None
        pid = self.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return {pid, *(int(c) for c in children)}

    def worker_pids(self) -> set[int]:
        assert self.proc is not None
        return self.pids() - {self.proc.pid}

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log_file.read_text().splitlines():
            if line.startswith("{"):
                event: dict[str, Any] = orjson.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def token(self, number: str = "X1") -> bytes:
        return sign_query(fr_query(number), self.fr)

    def connections(self) -> dict[int, http.client.HTTPSConnection]:
        """One open connection to each process, by its pid: connections are opened until
        the kernel has given one to each (bounded), the others closed."""
        pids = self.pids()
        held: dict[int, http.client.HTTPSConnection] = {}
        for _ in range(200):
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.peer, context=UNCHECKED_TLS, timeout=20
            )
            conn.connect()
            owner = _owner(self.peer, conn, pids)
            if owner in held:
                conn.close()
            else:
                held[owner] = conn
            if len(held) == len(pids):
                return held
        raise AssertionError(f"200 connections went to {sorted(held)} only, of {sorted(pids)}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def verify(self) -> dict[str, Any]:
        done = cli("enquiries", "verify", "--json", config=self.config, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        report: dict[str, Any] = orjson.loads(done.stdout)
        return report

    def logged_ids(self) -> set[str]:
        done = cli("enquiries", "list", "--json", "--limit", "100000", config=self.config)
        return {e["id"] for e in orjson.loads(done.stdout)}


def _owner(port: int, conn: http.client.HTTPSConnection, pids: set[int]) -> int:
    """The pid holding the server side of `conn` (accepted before the TLS handshake ended)."""
    assert conn.sock is not None
    client_port = conn.sock.getsockname()[1]
    local, remote = f"0100007F:{port:04X}", f"0100007F:{client_port:04X}"
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            inode = fields[9]
    assert inode is not None, "no server side for this connection"
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no process of {sorted(pids)} holds socket {inode}")


def _post(conn: http.client.HTTPSConnection, token: bytes) -> tuple[int, bytes]:
    conn.request("POST", "/v1/query", body=token, headers={"Content-Type": "application/jose"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def _claims(body: bytes) -> dict[str, Any]:
    """An answer's claims, unverified: these tests look at what it says."""
    payload = body.split(b".")[1]
    claims: dict[str, Any] = orjson.loads(
        base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
    )
    return claims


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(10)


def test_a_jti_answered_by_one_worker_is_refused_by_the_other(
    tmp_path: Path, nodes: list[Node]
) -> None:
    node = Node(tmp_path)
    nodes.append(node)
    node.start()
    conns = node.connections()
    assert len(conns) == 2
    first, second = conns.values()
    token = node.token()
    assert _post(first, token)[0] == 200
    status, body = _post(second, token)
    assert status == 409
    assert orjson.loads(body)["code"] == "replay"
    # At the same instant to both: neither process has committed the other's row when it
    # checks, so one answer leaves and the other is refused at its commit, by the log's
    # (iss, jti) key, before any answer leaves.
    for _ in range(10):
        token = node.token()
        gate = threading.Barrier(2)

        def send(
            conn: http.client.HTTPSConnection, token: bytes = token, gate: threading.Barrier = gate
        ) -> int:
            gate.wait()
            return _post(conn, token)[0]

        with ThreadPoolExecutor(2) as pool:
            statuses = sorted(pool.map(send, [first, second]))
        assert statuses == [200, 409]
    assert node.verify()["ok"]


def test_the_chain_holds_every_answer_of_both_workers(tmp_path: Path, nodes: list[Node]) -> None:
    node = Node(tmp_path)
    nodes.append(node)
    node.start()
    conns = node.connections()
    answered: dict[int, list[str]] = {pid: [] for pid in conns}

    def load(pid: int) -> None:
        for _ in range(60):
            status, body = _post(conns[pid], node.token())
            assert status == 200
            answered[pid].append(_claims(body)["enquiry"])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(load, conns))
    assert all(len(ids) == 60 for ids in answered.values())
    report = node.verify()
    assert report["ok"]
    assert report["rows"] == 120
    assert node.logged_ids() == {i for ids in answered.values() for i in ids}


def test_sigterm_drains_both_workers_and_the_checkpoint_follows_their_rows(
    tmp_path: Path, nodes: list[Node]
) -> None:
    node = Node(tmp_path)
    nodes.append(node)
    node.start()
    conns = node.connections()
    answered: list[str] = []
    stop = threading.Event()

    def load(conn: http.client.HTTPSConnection) -> None:
        while not stop.is_set():
            try:
                status, body = _post(conn, node.token())
            except (OSError, http.client.HTTPException):
                return  # the listener closed: the drain
            if status == 200:
                answered.append(_claims(body)["enquiry"])
            else:
                assert status == 503, body  # draining: refused, nothing logged

    with ThreadPoolExecutor(2) as pool:
        running = [pool.submit(load, c) for c in conns.values()]
        wait_for(lambda: len(answered) >= 40)
        workers = node.worker_pids()
        assert node.stop() == 0
        stop.set()
        for f in running:
            f.result()
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists()
    drained = {e.get("worker") for e in node.events("node_drained")}
    assert drained == {0, 1}
    assert node.events("workers_stopped")[-1]["codes"] == {"1": 0}
    assert set(answered) <= node.logged_ids()
    assert node.verify()["ok"]
    # The checkpoint kept at exit was taken after the worker's last row: the node starts on
    # its log again without `--new-log`.
    node.start()
    assert node.stop() == 0


def test_sigterm_to_every_process_at_once_as_systemd_sends_it(
    tmp_path: Path, nodes: list[Node]
) -> None:
    node = Node(tmp_path)
    nodes.append(node)
    node.start()
    assert node.proc is not None
    (worker,) = node.worker_pids()
    os.kill(worker, signal.SIGTERM)
    assert node.stop() == 0
    assert not node.events("worker_exited")  # a stop, not a crash: not started again
    assert not node.events("worker_started")[1:]
    assert node.events("workers_stopped")[-1]["codes"] == {"1": 0}


def test_a_worker_killed_loses_no_answered_enquiry_and_is_replaced(
    tmp_path: Path, nodes: list[Node]
) -> None:
    node = Node(tmp_path)
    nodes.append(node)
    node.start()
    conns = node.connections()
    assert node.proc is not None
    (victim,) = node.worker_pids()
    answered: list[str] = []
    stop = threading.Event()

    def load(conn: http.client.HTTPSConnection) -> None:
        while not stop.is_set():
            try:
                status, body = _post(conn, node.token())
            except (OSError, http.client.HTTPException):
                return  # the killed worker's connection
            assert status == 200, body
            answered.append(_claims(body)["enquiry"])

    with ThreadPoolExecutor(2) as pool:
        running = [pool.submit(load, c) for c in conns.values()]
        wait_for(lambda: len(answered) >= 40)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: node.events("worker_exited"))
        stop.set()
        for f in running:
            f.result()
    (exited,) = node.events("worker_exited")
    assert exited["worker"] == 1
    assert exited["code"] == -signal.SIGKILL
    # Every answer that left has its row: rows commit before answers leave.
    assert set(answered) <= node.logged_ids()
    assert node.verify()["ok"]
    wait_for(lambda: len(node.worker_pids()) == 1 and victim not in node.worker_pids())
    wait_for(lambda: readyz(node.local, node.config)["status"] == "ready")
    assert len(node.connections()) == 2  # the new worker answers
    assert node.stop() == 0


RATED = POLICY.replace("    answer: full\n", "    answer: full\n    rate: 4/minute\n", 1)


def test_a_rate_limit_counts_the_checks_of_both_workers(tmp_path: Path, nodes: list[Node]) -> None:
    node = Node(tmp_path, RATED)
    nodes.append(node)
    node.start()
    first, second = node.connections().values()
    results = []
    for i in range(10):
        status, body = _post(first if i % 2 else second, node.token())
        assert status == 200
        results.append(_claims(body)["results"][0])
    reasons = [r.get("reason") for r in results]
    assert reasons[:4] == [None] * 4
    assert reasons[4:] == ["rate_limited"] * 6
    assert all(r["retry_after"] > 0 for r in results[4:])
    assert node.stop() == 0


DENY_FR = "inbound: []\n"


def test_sighup_reloads_every_worker(tmp_path: Path, nodes: list[Node]) -> None:
    # Policies are reread on SIGHUP only, so what the workers answer after it is its doing.
    node = Node(tmp_path)
    nodes.append(node)
    node.config.write_text(
        node.config.read_text().replace("policy_reload_interval: 0.2", "policy_reload_interval: 0")
    )
    node.start()
    conns = node.connections()
    for conn in conns.values():
        status, body = _post(conn, node.token())
        assert _claims(body)["results"][0]["status"] != "denied"
    (node.config.parent / "policies" / "10-test.yaml").write_text(DENY_FR)
    assert node.proc is not None
    node.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: {e.get("worker") for e in node.events("reloaded")} == {0, 1})
    for conn in conns.values():
        status, body = _post(conn, node.token())
        assert status == 200
        assert _claims(body)["results"][0]["status"] == "denied"
    assert node.stop() == 0


def test_one_worker_is_todays_single_process(tmp_path: Path, nodes: list[Node]) -> None:
    node = Node(tmp_path)
    nodes.append(node)
    node.config.write_text(node.config.read_text().replace("workers: 2\n", "workers: 1\n"))
    node.start()
    assert node.worker_pids() == set()
    assert len(node.connections()) == 1
    assert not node.config.parent.joinpath("enquiries.db.commit-lock").exists()
    assert node.stop() == 0
    assert not node.events("workers_stopped")


def test_workers_auto_is_the_cores_and_a_bad_count_is_named(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "DE")
    text = config.read_text()
    config.write_text(text + "workers: auto\n")
    assert load_settings(config).worker_count == len(os.sched_getaffinity(0))
    config.write_text(text + "workers: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert f"{config}:" in str(caught.value)
    assert "workers" in str(caught.value)
    # A change of `workers:` waits for a restart, as the listeners do.
    assert "workers" not in RELOADABLE


# --- /metrics: the whole node ------------------------------------------------------------

CHECKS = "ncb_inbound_checks_total"
ANSWERED = "ncb_inbound_answer_seconds_count"


def scrape(node: Node) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.local}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    # The exposition parses, and names each series once.
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    found = {(s.name, frozenset(s.labels.items())): s.value for s in samples}
    assert len(found) == len(samples)
    return found


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def send(node: Node, per_process: dict[int, int]) -> None:
    """`per_process[pid]` checks answered by that process, each with a new token."""
    conns = node.connections()
    assert set(conns) == set(per_process)
    for pid, n in per_process.items():
        for _ in range(n):
            assert _post(conns[pid], node.token())[0] == 200
    for conn in conns.values():
        conn.close()


def test_metrics_count_the_checks_of_both_workers_across_a_restart(
    tmp_path: Path, nodes: list[Node]
) -> None:
    node = Node(tmp_path)
    nodes.append(node)
    node.start()
    assert node.proc is not None
    main = node.proc.pid
    (worker,) = node.worker_pids()
    before = scrape(node)
    assert before[("ncb_worker_up", frozenset({("worker", "1")}))] == 1.0
    send(node, {main: 3, worker: 5})
    after = scrape(node)
    assert total(after, CHECKS) - total(before, CHECKS) == 8
    assert total(after, ANSWERED) - total(before, ANSWERED) == 8
    # Every check is one enquiry row, committed in one of the two processes' group commits.
    rows = "ncb_enquiry_log_commit_rows_sum"
    assert total(after, rows) - total(before, rows) == 8

    # SIGKILL: the worker's own counters are gone with it and its successor starts at 0.
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: len(node.worker_pids()) == 1 and worker not in node.worker_pids())
    wait_for(lambda: readyz(node.local, node.config)["status"] == "ready")
    (worker,) = node.worker_pids()
    restarted = scrape(node)
    # Each series as it was: no reset for Prometheus to see, nothing counted twice.
    for key in (k for k in after if k[0] in (CHECKS, ANSWERED)):
        assert restarted[key] == after[key], key
    assert restarted[("ncb_worker_up", frozenset({("worker", "1")}))] == 1.0
    send(node, {main: 2, worker: 4})
    again = scrape(node)
    assert total(again, CHECKS) - total(restarted, CHECKS) == 6
    assert total(again, ANSWERED) - total(before, ANSWERED) == 14
    assert all(again[k] >= v for k, v in restarted.items() if k[0].startswith("ncb_inbound"))
    assert node.stop() == 0
