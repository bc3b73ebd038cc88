"""The command line as an admin uses it: real processes, real files, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.docs import assert_shows
from support.processes import (
    CLI,
    POLICY,
    cli,
    fr_query,
    free_port,
    init,
    pin_fresh_peer,
    readyz,
    wait_for,
    wait_ready,
)

from connector.crypto.keyfiles import certificate_fingerprint


@pytest.fixture
def running_de(tmp_path: Path) -> Iterator[tuple[Path, int, int, subprocess.Popen[str]]]:
    config, peer, local = init(tmp_path, "DE")
    (config.parent / "policies" / "10-test.yaml").write_text(POLICY)
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(60)  # a loaded CI machine starts Python slowly
    env = {**os.environ, "NCB_CONNECTOR_CONFIG": str(config), "NOTIFY_SOCKET": str(notify)}
    proc = subprocess.Popen(
        [*CLI, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert sock.recv(4096).startswith(b"READY=1")
        wait_ready(local, proc)
        proc.notify_socket = sock  # type: ignore[attr-defined]
        yield config, peer, local, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        sock.close()


def test_init_writes_a_private_key_and_refuses_to_overwrite(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    key = config.parent / "keys" / "node.jwk"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (config.parent / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
    assert (config.parent / "policies" / "00-default.yaml").exists()
    again = cli("init", "--node", "FR", "--dir", str(config.parent), check=False)
    assert again.returncode != 0
    assert "refusing to overwrite" in again.stderr
    assert "Traceback" not in again.stderr


def test_init_rejects_a_bad_node_id(tmp_path: Path) -> None:
    proc = cli("init", "--node", "XX", "--dir", str(tmp_path / "x"), check=False)
    assert proc.returncode == 2
    assert "'XX' is not an ISO 3166-1 alpha-2 country code" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_keys_show(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    shown = json.loads(cli("keys", "show", "--json", config=config).stdout)
    jwk = json.loads((config.parent / "keys" / "node.jwk").read_text())
    assert shown["jwk"]["x"] == jwk["x"]
    assert "d" not in shown["jwk"]
    assert shown["thumbprint"] == jwk["kid"]
    assert shown["tls_fingerprint"] == certificate_fingerprint(
        (config.parent / "tls" / "cert.pem").read_bytes()
    )
    text = cli("keys", "show", "--config", str(config)).stdout
    assert shown["thumbprint"] in text


def test_missing_config_is_one_clear_line(tmp_path: Path) -> None:
    proc = cli("peers", "list", "--config", str(tmp_path / "nope.yaml"), check=False)
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr
    assert "Traceback" not in proc.stderr
    # It says every way to point at a config, and how to make one.
    for hint in ("--config", "NCB_CONNECTOR_CONFIG", "ncb-connector init"):
        assert hint in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_config_with_unknown_key(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    config.write_text(config.read_text() + "colour: blue\n")
    proc = cli("config", "check", config=config, check=False)
    assert proc.returncode == 2
    assert "colour" in proc.stderr


def test_import_reports_bad_lines_and_keeps_good_ones(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "DE")
    csv = tmp_path / "docs.csv"
    csv.write_text(
        "document_number,document_country,document_type,status,reported_on,holder_name\n"
        "C01X00T47,DE,P,stolen,2026-01-02,Erika Mustermann\n"
        "C01X00T48,XX,P,stolen,2026-01-02,\n"
        "C01X00T49,DE,P,misplaced,2026-01-02,\n"
        "C01X00T50,DE,P,lost,2026-02-30,\n"
        "C01X00T51,DE,P,lost,,\n"
        "C01X00T47,DE,P,revoked,2026-01-03,Erika Mustermann\n"
    )
    proc = cli(
        "records", "import", str(csv), "--category", "travel_documents", config=config, check=False
    )
    assert proc.returncode == 1
    assert "docs.csv:3: document_country" in proc.stderr
    assert "docs.csv:4: status" in proc.stderr
    assert "docs.csv:5: reported_on" in proc.stderr
    assert (
        "2 inserted, 1 updated, 0 unchanged, 0 removed, 3 rejected" in proc.stdout
    )  # line 7 updates 2
    nd = tmp_path / "docs.ndjson"
    nd.write_text(
        '{"number": "A1", "country": "DE", "status": "lost"}\n{"number": \n'
        '[1, 2]\n{"number": "A2", "country": "DE", "status": "lost", "x": 1}\n'
    )
    proc = cli(
        "records", "import", str(nd), "--category", "travel_documents", config=config, check=False
    )
    assert "docs.ndjson:2: not valid JSON" in proc.stderr
    assert "docs.ndjson:3: a line must hold one JSON object" in proc.stderr
    assert "docs.ndjson:4: x: Extra inputs are not permitted" in proc.stderr
    assert "1 inserted, 0 updated, 0 unchanged, 0 removed, 3 rejected" in proc.stdout
    more = tmp_path / "more.csv"
    more.write_text(
        "document_number,document_country,document_type,status\nB1,FRA,P,lost\nB2,DE,Z,lost\n"
    )
    proc = cli(
        "records", "import", str(more), "--category", "travel_documents", config=config, check=False
    )
    assert (
        "more.csv:2: document_country: 'FRA' is not an ISO 3166-1 alpha-2 country "
        "code (did you mean FR?)" in proc.stderr
    )
    assert "more.csv:3: document_type" in proc.stderr
    missing = cli(
        "records",
        "import",
        str(tmp_path / "nope.csv"),
        "--category",
        "travel_documents",
        config=config,
        check=False,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: cannot read")
    stats = cli("records", "stats", config=config).stdout
    assert "travel_documents              3" in stats


def test_import_csv_missing_columns(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "DE")
    csv = tmp_path / "docs.csv"
    csv.write_text("number,country\nA1,DE\n")
    proc = cli(
        "records", "import", str(csv), "--category", "travel_documents", config=config, check=False
    )
    assert proc.returncode == 2
    assert f"{csv}:1: the CSV header lacks the column(s) status" in proc.stderr


def test_import_from_a_pipe(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "DE")
    lines = "".join(
        f'{{"number": "P{i:07d}", "country": "DE", "status": "stolen"}}\n' for i in range(12_000)
    )
    proc = cli(
        "records", "import", "-", "--category", "travel_documents", config=config, input=lines
    )
    assert "12000 inserted" in proc.stdout


def test_a_2_gb_line_through_a_pipe_is_reported_and_the_good_lines_go_in(tmp_path: Path) -> None:
    """2 GiB without a line break between two good lines: the importer reads it in bounded
    pieces, names the line, imports the others — and never holds it in memory."""
    config, _, _ = init(tmp_path, "DE")
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [*CLI, "records", "import", "-", "--category", "travel_documents"],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            env={**os.environ, "NCB_CONNECTOR_CONFIG": str(config), "COLUMNS": "200"},
        )
        assert proc.stdin is not None
        block = b"x" * (1 << 20)
        proc.stdin.write(b'{"number": "P0000001", "country": "DE", "status": "stolen"}\n')
        for _ in range(2048):  # 2 GiB, bounded
            proc.stdin.write(block)
        proc.stdin.write(b'\n{"number": "P0000002", "country": "DE", "status": "stolen"}\n')
        proc.stdin.close()
        # This child's own peak: RUSAGE_CHILDREN would also count every process the tests
        # before this one started (a node under a connection flood, say).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 1, err_path.read_text()
    assert "2 inserted" in out_path.read_text()
    assert "-:2: the line is 2,147,483,649 bytes long" in err_path.read_text()
    peak_kib = usage.ru_maxrss
    assert peak_kib < 400 * 1024, f"the importer peaked at {peak_kib / 1024:.0f} MiB"


def test_adding_a_second_node_of_a_country_says_which_rules_it_inherits(tmp_path: Path) -> None:
    from connector.crypto.jws import Signer, SigningKey

    config, _, _ = init(tmp_path, "DE")
    (config.parent / "policies" / "10-test.yaml").write_text(POLICY)  # `documents for FR`
    key = json.dumps(Signer(SigningKey.generate()).public.jwk())
    added = cli(
        "peers",
        "add",
        "FR-2",
        "--url",
        "http://127.0.0.1:9",
        "--insecure",
        "--key",
        key,
        config=config,
    ).stdout
    assert (
        "FR-2 is a node of FR; these rules name FR and so apply to it too: "
        "inbound 'documents for FR'" in added
    )
    added = cli(
        "peers",
        "add",
        "FR",
        "--url",
        "http://127.0.0.1:9",
        "--insecure",
        "--key",
        json.dumps(Signer(SigningKey.generate()).public.jwk()),
        config=config,
    ).stdout
    assert "note:" not in added


def test_adding_a_known_peer_says_so_before_fetching(tmp_path: Path) -> None:
    """A peer already pinned is refused at once: no connection, no key to confirm."""

    config, _, _ = init(tmp_path, "DE")
    pin_fresh_peer(config)
    port = free_port()  # nothing listens there: a fetch would fail with "connection refused"
    again = cli(
        "peers",
        "add",
        "FR",
        "--url",
        f"https://127.0.0.1:{port}",
        "--fetch",
        config=config,
        check=False,
    )
    assert again.returncode == 2
    assert "FR is already trusted (at http://127.0.0.1:9)" in again.stderr
    assert "peers remove FR" in again.stderr
    assert "add --update (with --fetch)" in again.stderr
    assert "refused" not in again.stderr


def test_policy_check_reports_file_line_and_rule(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "DE")
    (config.parent / "policies" / "20-bad.yaml").write_text(
        "inbound:\n  - name: typo rule\n    from: [FR]\n    categories: [travel_document]\n"
        "    answer: full\n"
    )
    proc = cli("policy", "check", config=config, check=False)
    assert proc.returncode == 1
    assert "20-bad.yaml:4" in proc.stderr
    assert "typo rule" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_two_nodes_end_to_end(
    tmp_path: Path, running_de: tuple[Path, int, int, subprocess.Popen[str]]
) -> None:
    de_config, de_peer, de_local, de_proc = running_de
    fr_config, _, _ = init(tmp_path, "FR")
    (fr_config.parent / "policies" / "10-test.yaml").write_text(POLICY)
    # FR pins DE by fetching its identity; DE pins FR from the JWK FR's admin sent.
    added = cli(
        "peers",
        "add",
        "DE",
        "--url",
        f"https://127.0.0.1:{de_peer}",
        "--fetch",
        "--yes",
        config=fr_config,
    )
    assert "key thumbprint" in added.stdout
    fr_keys = json.loads(cli("keys", "show", "--json", config=fr_config).stdout)
    cli(
        "peers",
        "add",
        "FR",
        "--url",
        "https://127.0.0.1:9",
        "--key",
        json.dumps(fr_keys["jwk"]),
        "--tls-fingerprint",
        fr_keys["tls_fingerprint"],
        config=de_config,
    )
    listed = json.loads(cli("peers", "list", "--json", config=fr_config).stdout)
    assert [p["id"] for p in listed] == ["DE"]
    de_keys = json.loads(cli("keys", "show", "--json", config=de_config).stdout)
    assert listed[0]["keys"] == [de_keys["thumbprint"]]
    assert listed[0]["tls_fingerprint"] == de_keys["tls_fingerprint"]
    data = tmp_path / "de.ndjson"
    data.write_text(
        '{"id": "BKA-0815", "number": "C01X00T47", "country": "DE", "status": "stolen"}\n'
    )
    cli("records", "import", str(data), "--category", "travel_documents", config=de_config)
    de_proc.send_signal(signal.SIGHUP)  # peers.yaml changed: reload now
    wait_for(lambda: readyz(de_local, de_config)["peers"] == 1)

    asked = cli(
        "query",
        "--peer",
        "DE",
        "--category",
        "travel_documents",
        "--number",
        "c01x00t47",
        "--country",
        "DE",
        "--json",
        config=fr_config,
        check=False,
    )
    assert asked.returncode == 3  # a hit, as search says one too
    hit = json.loads(asked.stdout)
    assert hit["results"][0]["status"] == "hit"
    table = cli(
        "query",
        "--peer",
        "DE",
        "--category",
        "travel_documents",
        "--number",
        "Z1",
        config=fr_config,
    ).stdout
    assert "no_hit" in table

    de_rows = json.loads(cli("enquiries", "list", "--json", config=de_config).stdout)
    fr_rows = json.loads(
        cli("enquiries", "list", "--json", "--peer", "DE", "--since", "1h", config=fr_config).stdout
    )
    assert [r["direction"] for r in de_rows] == ["in", "in"]
    assert [r["direction"] for r in fr_rows] == ["out", "out"]
    assert de_rows[0]["hit_refs"] == ["DE:travel_documents:BKA-0815"]
    shown = json.loads(cli("enquiries", "show", de_rows[0]["id"], config=de_config).stdout)
    assert shown["rules"] == ["documents for FR"]
    assert shown["query_token"].count(".") == 2
    assert "ok: 2 row(s)" in cli("enquiries", "verify", config=de_config).stdout

    db = de_config.parent / "enquiries.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE enquiries SET hit_refs = '[]' WHERE seq = 1")
    broken = cli("enquiries", "verify", config=de_config, check=False)
    assert broken.returncode == 1
    assert "row 1" in broken.stderr


def test_reload_keeps_the_old_policy_when_the_new_one_is_broken(
    running_de: tuple[Path, int, int, subprocess.Popen[str]],
) -> None:
    config, _, local, proc = running_de
    good = readyz(local, config)
    assert good["status"] == "ready"
    (config.parent / "policies" / "10-test.yaml").write_text(POLICY + "  - agency: [oops\n")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: readyz(local)["status"] == "degraded")
    state = readyz(local, config)
    assert state["policy_digest"] == good["policy_digest"]
    assert "policy" in state["problems"]  # type: ignore[operator]
    (config.parent / "policies" / "10-test.yaml").write_text(POLICY.replace("FR]", "FR, IT]"))
    # No signal this time: the periodic check picks the fixed file up.
    wait_for(lambda: readyz(local)["status"] == "ready")
    assert readyz(local, config)["policy_digest"] != good["policy_digest"]


def test_sigterm_stops_cleanly_and_tells_systemd(
    running_de: tuple[Path, int, int, subprocess.Popen[str]],
) -> None:
    _, _, _, proc = running_de
    proc.send_signal(signal.SIGHUP)
    sock = proc.notify_socket  # type: ignore[attr-defined]
    assert sock.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
    assert sock.recv(4096).startswith(b"READY=1")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert sock.recv(4096) == b"STOPPING=1"
    stderr = proc.stderr.read() if proc.stderr else ""
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "node_started" in events
    assert events[-1] == "node_stopped"


def test_policy_explain_matrix_and_diff(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "DE")
    policies = config.parent / "policies"
    (policies / "10-test.yaml").write_text(POLICY + "  # end\n")
    explained = json.loads(
        cli(
            "policy",
            "explain",
            "--from",
            "FR",
            "--agency-kind",
            "border",
            "--purpose",
            "border_control",
            "--category",
            "travel_documents",
            "--json",
            config=config,
        ).stdout
    )
    assert explained["rule"] == "documents for FR"
    assert explained["level"] == "full"
    assert "holder_name" in explained["fields"]
    denied = cli(
        "policy",
        "explain",
        "--from",
        "GB",
        "--agency-kind",
        "border",
        "--purpose",
        "border_control",
        "--category",
        "travel_documents",
        config=config,
    ).stdout
    assert "default applies (deny)" in denied
    assert "skipped 'documents for FR'" in denied
    csv = cli("policy", "matrix", config=config).stdout.splitlines()
    assert csv[0].startswith("peer,wanted_persons,")
    assert "FR,none,none,full,none,none,none,none" in csv
    assert "*,none,none,none,none,none,none,none" in csv
    new = tmp_path / "new"
    new.mkdir()
    (new / "10-test.yaml").write_text(
        POLICY.replace("answer: full", "answer: summary").replace("[FR]", "[FR, GB]")
    )
    same = cli("policy", "diff", str(policies), str(policies))
    assert "no query's outcome changes" in same.stdout
    changed = cli("policy", "diff", str(policies), str(new), "--json", check=False)
    assert changed.returncode == 1
    rows = json.loads(changed.stdout)
    assert {(r["peer"], r["old"]["level"], r["new"]["level"]) for r in rows} == {
        ("FR", "full", "summary"),
        ("GB", "none", "summary"),
    }


def test_sigterm_drains_a_request_in_flight(
    running_de: tuple[Path, int, int, subprocess.Popen[str]],
) -> None:
    """A query whose body is still arriving when SIGTERM comes is answered, then the node
    exits; new connections are refused meanwhile."""
    import ssl

    from connector.protocol import sign_query

    config, peer_port, local, proc = running_de
    signer = pin_fresh_peer(config)
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: readyz(local, config)["peers"] == 1)
    query = fr_query("A1")
    token = sign_query(query, signer)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", peer_port), timeout=20)
    conn = ctx.wrap_socket(raw)
    conn.sendall(
        b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/jose\r\n"
        b"Connection: close\r\nContent-Length: "
        + str(len(token)).encode()
        + b"\r\n\r\n"
        + token[:20]
    )
    time.sleep(0.3)  # the handler is now waiting for the rest of the body
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", peer_port), timeout=2).close()
    conn.sendall(token[20:])
    response = b""
    while chunk := conn.recv(65536):
        response += chunk
    conn.close()
    assert response.startswith(b"HTTP/1.1 200 OK"), response[:200]
    assert b"application/jose" in response
    assert proc.wait(timeout=30) == 0


def test_admin_mistakes_get_one_line_not_a_traceback(
    tmp_path: Path, running_de: tuple[Path, int, int, subprocess.Popen[str]]
) -> None:
    de_config, _, _, _ = running_de
    # A second node on the same ports.
    second = cli("run", config=de_config, check=False)
    assert second.returncode == 2
    assert "cannot listen" in second.stderr
    # A state directory that does not exist yet, given relative to the working directory.
    state = tmp_path / "state"
    cli(
        "init",
        "--node",
        "LU",
        "--dir",
        str(tmp_path / "lu"),
        "--state-dir",
        str(state),
        "--peer-port",
        str(free_port()),
        "--local-port",
        str(free_port()),
    )
    lu = tmp_path / "lu" / "connector.yaml"
    assert "travel_documents" in cli("records", "stats", config=lu).stdout
    assert (state / "records.db").exists()
    # A damaged enquiry-log row.
    cli("enquiries", "list", config=lu)
    with sqlite3.connect(state / "enquiries.db") as conn:
        conn.execute(
            "INSERT INTO enquiries VALUES (1, 'X', 1.0, 'in', 'FR', 'FR', 'j', NULL, "
            "NULL, NULL, NULL, 'answered', 'not json', NULL, '[]', '[]', '[]', NULL, "
            "NULL, 't', 'p', 'h', NULL)"
        )
    damaged = cli("enquiries", "list", config=lu, check=False)
    assert damaged.returncode == 2
    assert "row 1 of the enquiry log is damaged" in damaged.stderr
    assert "Traceback" not in damaged.stderr
    # A peer id that is not one.
    bad_peer = cli(
        "policy",
        "explain",
        "--from",
        "UK",
        "--agency-kind",
        "border",
        "--purpose",
        "border_control",
        "--category",
        "travel_documents",
        config=lu,
        check=False,
    )
    assert "did you mean 'GB'?" in bad_peer.stderr
    # This node as its own peer.
    own = cli(
        "peers",
        "add",
        "LU",
        "--url",
        "http://127.0.0.1:9",
        "--insecure",
        "--key",
        "{}",
        config=lu,
        check=False,
    )
    assert "this node itself" in own.stderr


def test_keys_show_prints_values_verbatim(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    shown = json.loads(cli("keys", "show", "--json", config=config).stdout)
    text = cli("keys", "show", config=config).stdout
    assert f"tls fingerprint  {shown['tls_fingerprint']}\n" in text
    assert text.isascii()


def test_config_errors_name_file_line_and_key(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    text = config.read_text()
    config.write_text(
        text.replace("    port: 8443", "    port: 99999")
        if "8443" in text
        else text.replace(
            "peer:\n    host: 127.0.0.1\n", "peer:\n    host: 127.0.0.1\n    colour: 1\n"
        )
    )
    config.write_text(config.read_text() + "node: DE\n")
    proc = cli("config", "check", config=config, check=False)
    assert proc.returncode == 2
    assert f"{config}:" in proc.stderr
    assert "duplicate key 'node'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_records_show_remove_and_replace(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "DE")
    first = tmp_path / "a.ndjson"
    first.write_text(
        "".join(
            f'{{"id": "DE-P-A{i}", "number": "A{i}", "country": "DE", "status": "lost"}}\n'
            for i in range(5)
        )
    )
    cli("records", "import", str(first), "--category", "travel_documents", config=config)
    shown = json.loads(cli("records", "show", "DE:travel_documents:DE-P-A3", config=config).stdout)
    assert shown["fields"]["document_number"] == "A3"  # written `number`: read as today
    assert (
        "removed travel_documents/DE-P-A3"
        in cli("records", "remove", "travel_documents/DE-P-A3", config=config).stdout
    )
    gone = cli("records", "show", "travel_documents/DE-P-A3", config=config, check=False)
    assert gone.returncode == 1
    foreign = cli("records", "show", "FR:travel_documents:X", config=config, check=False)
    assert "not of this node" in foreign.stderr
    # --replace with a bad line removes nothing; with a clean file it makes the set equal.
    second = tmp_path / "b.ndjson"
    second.write_text('{"number": "A1", "country": "DE", "status": "stolen"}\n{"oops": 1}\n')
    partial = cli(
        "records",
        "import",
        str(second),
        "--category",
        "travel_documents",
        "--replace",
        config=config,
        check=False,
    )
    assert "0 removed" in partial.stdout
    assert "nothing was removed" in partial.stderr
    second.write_text(
        '{"number": "A1", "country": "DE", "status": "stolen"}\n'
        '{"number": "B9", "country": "DE", "status": "lost"}\n'
    )
    careful = cli(
        "records",
        "import",
        str(second),
        "--category",
        "travel_documents",
        "--replace",
        config=config,
    )
    assert "0 removed" in careful.stdout
    assert "more than 50% of the category" in careful.stderr
    done = cli(
        "records",
        "import",
        str(second),
        "--category",
        "travel_documents",
        "--replace",
        "--yes",
        config=config,
    )
    assert "0 inserted, 0 updated, 2 unchanged, 3 removed, 0 rejected" in done.stdout
    assert "travel_documents              2" in cli("records", "stats", config=config).stdout
    # A1 came back without an id: matched by its number, it keeps the id it had.
    assert (
        json.loads(cli("records", "show", "travel_documents/DE-P-A1", config=config).stdout)[
            "fields"
        ]["status"]
        == "stolen"
    )
    # An empty export never empties the category.
    empty = cli(
        "records",
        "import",
        "-",
        "--category",
        "travel_documents",
        "--replace",
        "--yes",
        config=config,
        input="",
    )
    assert "the file holds no records" in empty.stderr
    assert "travel_documents              2" in cli("records", "stats", config=config).stdout


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # EdDSA's RFC 9864 name
def test_signed_checkpoints_catch_rows_cut_from_the_end(tmp_path: Path) -> None:
    """`verify` prints a checkpoint signed with the node's key (any JOSE library checks it);
    given back with --expect, it proves the rows up to it are all still there."""
    from joserfc import jws
    from joserfc.jwk import OKPKey
    from support.entries import entry

    from connector.enquiries.log import EnquiryLog

    config, _, _ = init(tmp_path, "DE")
    db = tmp_path / "DE" / "enquiries.db"
    log = EnquiryLog.open(f"sqlite:///{db}")
    for i in range(5):
        log.append_now(entry(i))
    log.close()
    token = cli("enquiries", "verify", config=config).stdout.strip().splitlines()[-1]
    jwk = json.loads(cli("keys", "show", "--json", config=config).stdout)["jwk"]
    checked = jws.deserialize_compact(token, OKPKey.import_key(jwk), algorithms=["EdDSA"])
    claims = json.loads(checked.payload)
    assert (claims["iss"], claims["seq"], len(claims["hash"])) == ("DE", 5, 64)
    assert cli("enquiries", "verify", "--expect", token, config=config).returncode == 0

    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM enquiries WHERE seq >= 4")
    cut = cli("enquiries", "verify", "--expect", token, config=config, check=False)
    assert cut.returncode == 1
    assert "rows were removed from the end" in cut.stdout + cut.stderr
    # A checkpoint the node never signed is refused, not believed.
    head, payload, sig = token.split(".")
    forged = cli(
        "enquiries",
        "verify",
        "--expect",
        f"{head}.{payload[:-4]}AAAA.{sig}",
        config=config,
        check=False,
    )
    assert forged.returncode == 2
    assert "the checkpoint does not hold" in forged.stderr


def test_verify_names_disclosed_refs_and_notices_changed_beside_the_chain(
    tmp_path: Path,
) -> None:
    """A disclosed ref inserted by hand and a notice deleted: the chain is whole, yet `verify`
    exits 1 naming each, in words and in --json (§8's shape, with two members more)."""
    from support.entries import sealed_notice_log

    config, _, _ = init(tmp_path, "DE")
    db = tmp_path / "DE" / "enquiries.db"
    hit, notice = sealed_notice_log(db)
    ok = json.loads(cli("enquiries", "verify", "--json", config=config).stdout)
    assert (ok["ok"], ok["disclosed_refs"], ok["sealed"]) == (True, [], [])

    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO disclosed_refs VALUES ('FR', 'DE:travel_documents:BKA-0816', 1.0)"
        )
        conn.execute("DELETE FROM outbox WHERE id = ?", (notice.id,))
    found = cli("enquiries", "verify", "--json", config=config, check=False)
    assert found.returncode == 1
    report = json.loads(found.stdout)
    assert (report["ok"], report["broken_seq"], report["checkpoint"]) == (False, None, None)
    assert report["problem"] == "1 disclosed ref(s) and 1 sealed row(s) do not match the chain"
    (added,) = report["disclosed_refs"]
    assert {k: added[k] for k in ("problem", "peer", "ref", "seq", "enquiry")} == {
        "problem": "added",
        "peer": "FR",
        "ref": "DE:travel_documents:BKA-0816",
        "seq": None,
        "enquiry": None,
    }
    (gone,) = report["sealed"]
    assert {k: gone[k] for k in ("problem", "table", "key", "seq", "enquiry")} == {
        "problem": "missing",
        "table": "outbox",
        "key": notice.id,
        "seq": 1,
        "enquiry": hit.id,
    }
    words = cli("enquiries", "verify", config=config, check=False)
    assert words.returncode == 1
    assert "BROKEN: 1 disclosed ref(s) and 1 sealed row(s)" in words.stderr
    assert added["message"] in words.stderr
    assert gone["message"] in words.stderr
    assert_shows("operations.md", "verify-refs-broken", words.stderr)


def test_policy_check_refuses_channels_connector_yaml_does_not_define(tmp_path: Path) -> None:
    """What the node would refuse to load, `policy check` refuses too."""
    config, _, _ = init(tmp_path, "DE")
    (config.parent / "policies" / "10-test.yaml").write_text(
        POLICY.replace(
            "    answer: full\n",
            "    answer: full\n    notify: always\n    channels: [duty-officer]\n",
            1,
        )
    )
    checked = cli("policy", "check", config=config, check=False)
    assert checked.returncode == 1
    assert (
        "notification channel(s) duty-officer that connector.yaml does not define" in checked.stderr
    )


def test_query_refuses_bad_criteria_itself_and_sends_no_login(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    bad = cli(
        "query",
        "--peer",
        "DE",
        "--category",
        "vehicles",
        "--criteria",
        '{"vin": "1M8GDM9A1KP042788"}',
        config=config,
        check=False,
    )
    assert bad.returncode == 2
    assert "vin: VIN check digit is wrong" in bad.stderr
    from connector.node.node import Node
    from connector.settings.config import load_settings

    os.environ.setdefault("USER", "erika.mustermann")
    node = Node.from_settings(load_settings(config))
    from connector.cli.common import _pseudonym

    sub = _pseudonym("border", node)
    assert sub.startswith("border/u-")
    assert os.environ["USER"] not in sub
    assert sub == _pseudonym("border", node)  # stable: the NCB can tell who asked


@pytest.mark.parametrize(
    ("node", "hint"),
    [
        ("UK", "did you mean 'GB'?"),
        ("uk", "did you mean 'GB'?"),
        ("EL", "did you mean 'GR'?"),
        ("DEU", "use alpha-2: 'DE'"),
        ("fr-2", "write 'FR-2'"),
    ],
)
def test_init_suggests_the_node_id_meant(tmp_path: Path, node: str, hint: str) -> None:
    proc = cli("init", "--node", node, "--dir", str(tmp_path / "n"), check=False)
    assert proc.returncode == 2
    assert hint in proc.stderr
    assert not (tmp_path / "n").exists()


def test_query_and_search_exit_4_when_a_peer_could_not_be_asked(tmp_path: Path) -> None:
    """0 means everyone was asked and nothing found: a peer that is down is never a 0."""
    from connector.crypto.jws import Signer, SigningKey

    config, _, _ = init(tmp_path, "FR")
    (config.parent / "policies" / "10-test.yaml").write_text(POLICY)  # ncb may ask anyone
    key = json.dumps(Signer(SigningKey.generate()).public.jwk())
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cli("peers", "add", "DE", "--url", down, "--insecure", "--key", key, config=config)
    criteria = ("--number", "C01X00T47", "--country", "DE")
    asked = cli(
        "query",
        "--peer",
        "DE",
        "--category",
        "travel_documents",
        *criteria,
        config=config,
        check=False,
    )
    assert asked.returncode == 4
    assert "connection refused" in asked.stderr
    searched = cli("search", *criteria, config=config, check=False)
    assert searched.returncode == 4, searched.stdout + searched.stderr
    assert "unreachable" in searched.stdout


def test_a_terminal_gets_console_lines_where_the_service_logs_json(tmp_path: Path) -> None:
    """An admin at a terminal never reads a raw JSON log line, even with `format: json`,
    which is for the service's journal."""
    import pty

    from connector.crypto.jws import Signer, SigningKey

    config, _, _ = init(tmp_path, "FR")
    config.write_text(config.read_text().replace("format: auto", "format: json"))
    (config.parent / "policies" / "10-test.yaml").write_text(POLICY)
    key = json.dumps(Signer(SigningKey.generate()).public.jwk())
    down = f"http://127.0.0.1:{free_port()}"  # an insecure peer: the client warns of it
    cli("peers", "add", "DE", "--url", down, "--insecure", "--key", key, config=config)
    leader, follower = pty.openpty()
    proc = subprocess.run(
        [*CLI, "query", "--peer", "DE", "--category", "travel_documents", "--number", "X1"],
        env={**os.environ, "NCB_CONNECTOR_CONFIG": str(config)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        timeout=60,
        check=False,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal is closed once everything was read
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    text = seen.decode(errors="replace")
    assert proc.returncode == 4
    assert "peer_insecure" in text
    assert '"event"' not in text


def test_record_values_are_shown_for_people() -> None:
    from connector.cli.render import shown

    assert shown(["RU"]) == "RU"
    assert shown(["RU", "UA"]) == "RU/UA"
    assert shown(True) == "yes"
    assert shown(False) == "no"
    assert shown(None) == "-"
    assert shown({"number": "X1", "country": "DE"}) == "number X1; country DE"
    assert shown([{"number": "X1"}]) == "number X1"
    assert shown(1980) == "1980"


def test_json_of_every_command_a_script_reads(tmp_path: Path) -> None:
    """The --json shapes docs/operations.md §17 documents, from real commands."""
    config, _, _ = init(tmp_path, "FR")

    def run(*args: str, status: int = 0) -> Any:
        done = cli(*args, "--json", config=config, check=False)
        assert done.returncode == status, done.stderr
        return json.loads(done.stdout)

    assert run("config", "check").keys() == {
        "ok",
        "node",
        "peers",
        "sources",
        "agencies",
        "policy_digest",
    }
    checked = run("policy", "check")
    assert checked["ok"] is True
    assert checked["digest"].startswith("sha256:")
    status = run("db", "status")
    assert [d["database"] for d in status["databases"]] == ["records", "enquiry log"]
    data = tmp_path / "docs.csv"
    data.write_text(
        "document_number,document_country,status\nC01X00T47,DE,stolen\nC01X00T48,XX,stolen\n"
    )
    imported = run("records", "import", str(data), "--category", "travel_documents", status=1)
    assert (imported["inserted"], imported["rejected"]) == (1, 1)
    assert imported["rejected_lines"][0]["line"] == 3
    assert imported["rejected_lines"][0]["reason"].startswith("document_country:")
    assert run("records", "stats")["categories"]["travel_documents"] == 1
    verified = run("enquiries", "verify")
    assert (verified["ok"], verified["rows"], verified["broken_seq"]) == (True, 0, None)
    assert verified["checkpoint"].count(".") == 2
    assert verified["head_seq"] == 0
    assert verified["archived"].keys() == {
        "base_seq",
        "base_hash",
        "checked",
        "rows_checked",
        "refs_not_checked",
        "checkpoint_not_checked",
        "files",
        "links",
    }
    nothing = run("enquiries", "archive", "--before", "30d")
    assert nothing.keys() == {"rows", "files", "first_seq", "last_seq", "head", "base", "resumed"}
    assert (nothing["rows"], nothing["files"], nothing["base"]["seq"]) == (0, [], 0)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "10.yaml").write_text(
        "inbound:\n  - name: typo\n    from: [FR]\n    categories: [travel_document]\n"
        "    answer: full\n"
    )
    refused = run("policy", "check", str(bad), status=1)
    assert refused["ok"] is False
    assert refused["errors"][0]["rule"] == "typo"
    assert refused["errors"][0]["line"] > 0
    manifest = {
        "node",
        "kid",
        "version",
        "created_at",
        "enquiry_log",
        "admin_audit",
        "databases",
        "members",
    }
    trail = run("audit", "verify")
    assert trail.keys() == {
        "ok",
        "file",
        "entries",
        "head",
        "finding",
        "line",
        "seq",
        "problem",
        "expect_held",
    }
    assert (trail["ok"], trail["entries"]) == (True, 2)  # init, and the import
    created = run("backup", "create", str(tmp_path / "backups"))
    assert created.keys() == {"archive", "size", "removed", "seconds"} | manifest
    assert created["admin_audit"] == trail["head"]
    log_revision = status["databases"][1]["needs"]  # the one this version makes
    assert created["databases"][1] == {
        "name": "enquiries",
        "backend": "sqlite",
        "revision": log_revision,
    }
    archive = created["archive"]
    checked_archive = run("backup", "verify", archive)
    assert checked_archive.keys() == {"ok", "archive", "archive_key", "node_key", "problems"} | (
        manifest
    )
    assert (checked_archive["ok"], checked_archive["node_key"]) == (True, True)


def test_an_age_or_date_that_cannot_be_is_refused_naming_its_option(tmp_path: Path) -> None:
    """99999999d reaches back before the year 1: a usage error naming the option, not a
    traceback; the same for a date that does not read."""
    config, _, _ = init(tmp_path, "DE")
    for args, option in (
        (("enquiries", "archive", "--before", "99999999d"), "--before"),
        (("enquiries", "list", "--since", "99999999d"), "--since"),
        (("audit", "list", "--since", "99999999d"), "--since"),
        (("enquiries", "list", "--since", "yesterday"), "--since"),
    ):
        done = cli(*args, config=config, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert f"Invalid value for {option}:" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
