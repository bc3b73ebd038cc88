"""Backups: an archive signed by the node, checked member by member, restored into a new node."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.docs import assert_shows
from support.entries import entry
from support.processes import (
    CLI,
    POLICY,
    cli,
    fr_query,
    free_port,
    init,
    pin_fresh_peer,
    post_query,
    wait_ready,
)

from connector.crypto.jws import Signer, SigningKey, parse_compact
from connector.crypto.keyfiles import read_signing_key
from connector.enquiries.log import EnquiryLog
from connector.node.backup import BACKUP_TYP, KEY, create_backup, verify_backup
from connector.node.init import init_node
from connector.protocol import Query, open_answer, sign_query
from connector.settings.config import load_settings
from connector.storage import pgtemp

RECORDS = "number,country,status\n" + "".join(f"D{n:07d},DE,stolen\n" for n in range(200))


def _node(tmp: Path) -> tuple[Path, int, int, Signer]:
    """DE, answering FR (whose key the test holds) from a few hundred records."""
    config, peer, local = init(tmp, "DE")
    (config.parent / "policies" / "10-test.yaml").write_text(POLICY)
    fr = pin_fresh_peer(config)
    data = tmp / "records.csv"
    data.write_text(RECORDS)
    cli("records", "import", str(data), "--category", "travel_documents", config=config)
    cli("agencies", "add", "border-1", "--kind", "border", config=config)
    return config, peer, local, fr


def _fill_log(config: Path, rows: int) -> None:
    """`rows` enquiries in DE's log, group-committed as a serving node commits them."""

    async def fill() -> None:
        log = EnquiryLog.open(load_settings(config).enquiries_url)
        try:
            for start in range(1, rows + 1, 500):
                await asyncio.gather(
                    *(log.append(entry(n)) for n in range(start, min(start + 500, rows + 1)))
                )
        finally:
            log.close()

    asyncio.run(fill())


def _ask(fr: Signer, number: str) -> tuple[Query, bytes]:
    query = fr_query(number)
    return query, sign_query(query, fr)


def _run(config: Path, local: int) -> subprocess.Popen[str]:
    """`ncb-connector run`; its log lines go to a file beside the config: a pipe nobody reads
    while the node answers thousands of queries would fill and stop it."""
    env = {**os.environ, "NCB_CONNECTOR_CONFIG": str(config)}
    with (config.parent / "node.log").open("a") as logfile:
        proc = subprocess.Popen([*CLI, "run"], env=env, stderr=logfile, text=True)
    wait_ready(local, proc)
    return proc


def _stop(proc: subprocess.Popen[str], config: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 0, (config.parent / "node.log").read_text()[-4000:]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive) as tar:
        return [(info, tar.extractfile(info).read()) for info in tar]  # type: ignore[union-attr]


def _rewrite(archive: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    """The archive made anew from `members`, compressed as it was: an attacker's edit that
    leaves the tar itself whole."""
    with (
        tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT)
        if archive.name.endswith(".gz")
        else tarfile.open(archive, "w", format=tarfile.PAX_FORMAT)
    ) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _verify(archive: Path, config: Path | None = None) -> tuple[int, dict[str, Any]]:
    done = cli("backup", "verify", str(archive), "--json", config=config, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_an_archive_verifies_and_a_changed_byte_or_another_signer_is_named(
    tmp_path: Path,
) -> None:
    config, _, _, _ = _node(tmp_path)
    _fill_log(config, 20)
    out = tmp_path / "backups"
    made = cli("backup", "create", str(out), "--no-compress", "--json", config=config)
    created = json.loads(made.stdout)
    archive = Path(created["archive"])
    assert archive.name.startswith("ncb-DE-")
    assert archive.name.endswith("Z.tar")
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds the keys
    assert created["enquiry_log"]["seq"] == 20
    assert [d["name"] for d in created["databases"]] == ["records", "enquiries"]
    assert all(d["revision"] for d in created["databases"])
    members = {info.name: info for info, _ in _members(archive)}
    assert members[KEY].mode == 0o600
    assert members["config/tls/key.pem"].mode == 0o600
    assert members["state/agencies.json"].mode == 0o600
    assert {"config/policies/10-test.yaml", "db/records.sqlite", "db/enquiries.sqlite"} <= set(
        members
    )

    # On the node: both keys checked; elsewhere, the archive's alone (and it says so).
    status, checked = _verify(archive, config)
    assert (status, checked["ok"], checked["archive_key"], checked["node_key"]) == (
        0,
        True,
        True,
        True,
    )
    status, checked = _verify(archive, tmp_path / "no-such.yaml")
    assert (status, checked["archive_key"], checked["node_key"]) == (0, True, None)
    said = cli("backup", "verify", str(archive), config=tmp_path / "no-such.yaml").stdout
    assert "not checked with a node's key" in said
    on_node = cli("backup", "verify", str(archive), config=config).stdout
    assert_shows("operations.md", "backup-verify", on_node.replace("node DE", "node FR"))

    # One byte of one member, changed in place in the tar.
    tampered = tmp_path / "tampered.tar"
    shutil.copy(archive, tampered)
    with tarfile.open(tampered) as tar:
        offset = tar.getmember("config/policies/10-test.yaml").offset_data
    with tampered.open("r+b") as fh:
        fh.seek(offset + 3)
        byte = fh.read(1)
        fh.seek(offset + 3)
        fh.write(bytes([byte[0] ^ 0x01]))
    status, checked = _verify(tampered, config)
    assert status == 1
    assert checked["archive_key"] is True  # the manifest is intact: the member is not
    (problem,) = checked["problems"]
    assert problem.startswith("config/policies/10-test.yaml is not as the manifest says")
    words = cli("backup", "verify", str(tampered), config=config, check=False)
    assert words.returncode == 1
    assert "PROBLEM: config/policies/10-test.yaml is not as the manifest says" in words.stdout

    # The same in a compressed archive, made anew so that gzip itself is whole.
    gz = Path(
        json.loads(cli("backup", "create", str(out), "--json", config=config).stdout)["archive"]
    )
    edited = [
        (info, data + b"#" if info.name == "db/records.sqlite" else data)
        for info, data in _members(gz)
    ]
    _rewrite(gz, edited)
    status, checked = _verify(gz, config)
    assert status == 1
    assert checked["problems"][0].startswith("db/records.sqlite is not as")

    # A manifest signed by another key: refused with the key in the archive.
    stranger_key = SigningKey.generate()
    stranger = Signer(stranger_key)
    forged = tmp_path / "forged.tar"
    shutil.copy(archive, forged)
    rows = _members(forged)
    payload = parse_compact(rows[0][1]).payload
    _rewrite(forged, [(rows[0][0], stranger.sign_compact(payload, typ=BACKUP_TYP)), *rows[1:]])
    status, checked = _verify(forged, config)
    assert (status, checked["archive_key"], checked["node_key"]) == (1, False, False)
    assert "not signed by the key in the archive" in checked["problems"][0]

    # Forged whole, the key in the archive swapped for the forger's: only the node's own
    # current key tells.
    manifest = orjson.loads(payload)
    key_jwk = orjson.dumps(stranger_key.private_jwk())
    for member in manifest["members"]:
        if member["name"] == KEY:
            member["size"] = len(key_jwk)
            member["sha256"] = hashlib.sha256(key_jwk).hexdigest()
    manifest["kid"] = stranger.kid
    token = stranger.sign_compact(orjson.dumps(manifest), typ=BACKUP_TYP)
    _rewrite(
        forged,
        [(rows[0][0], token)]
        + [(info, key_jwk if info.name == KEY else data) for info, data in rows[1:]],
    )
    status, checked = _verify(forged, tmp_path / "no-such.yaml")
    assert (status, checked["archive_key"]) == (0, True)  # whole, and signed by its own key…
    status, checked = _verify(forged, config)
    assert (status, checked["archive_key"], checked["node_key"]) == (1, True, False)
    settings = load_settings(config)
    kid = read_signing_key(settings.path(settings.key_file)).public.kid
    assert checked["problems"] == [  # …but not by this node's
        f"the manifest is not signed by a key this node publishes ({kid})"
    ]


# Rows in DE's log before the backup; NCB_BACKUP_TEST_ROWS=100000 measures a bigger node (the
# test prints how long the backup took and how many queries were answered meanwhile).
LOGGED = int(os.environ.get("NCB_BACKUP_TEST_ROWS", "5000"))


def test_a_node_backed_up_while_it_answers_is_restored_whole_and_answers(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    config, peer, local, fr = _node(tmp_path)
    _fill_log(config, LOGGED)
    procs.append(node := _run(config, local))

    # FR keeps asking, one query after another, for as long as the backup runs (bounded).
    answered: list[float] = []
    stop = threading.Event()

    def keep_asking() -> None:
        for n in range(2000):
            if stop.is_set():
                return
            status, _ = post_query(peer, _ask(fr, f"D{n % 200:07d}")[1])
            assert status == 200
            answered.append(time.monotonic())

    asking = threading.Thread(target=keep_asking)
    asking.start()
    try:
        while len(answered) < 5:
            time.sleep(0.01)
        began = time.monotonic()
        made = cli("backup", "create", str(tmp_path / "backups"), "--json", config=config)
        ended = time.monotonic()
    finally:
        stop.set()
        asking.join(timeout=60)
    created = json.loads(made.stdout)
    during = [t for t in answered if began <= t <= ended]
    print(
        f"\nbackup of a node with {LOGGED} log rows and 200 records while it answered: "
        f"{created['seconds']} s in create ({ended - began:.2f} s with the process); "
        f"{len(during)} queries answered meanwhile"
    )
    assert during, "the node answered nothing while it was backed up"
    head = created["enquiry_log"]
    assert head["seq"] > LOGGED  # the queries asked before the copy are in it
    _stop(node, config)
    total = LOGGED + len(answered)

    restored = tmp_path / "restored"
    archive = created["archive"]
    done = cli(
        "backup",
        "restore",
        archive,
        "--to",
        str(restored / "etc"),
        "--state-dir",
        str(restored / "var"),
    )
    assert "restored node DE" in done.stdout
    new_config = restored / "etc" / "connector.yaml"
    settings = load_settings(new_config)
    assert settings.enquiries_url == f"sqlite:///{(restored / 'var' / 'enquiries.db').resolve()}"
    assert settings.path(settings.key_file).stat().st_mode & 0o777 == 0o600

    # The chain is whole and holds the manifest's head as it was signed, no row beyond.
    expect = f"{head['seq']}:{head['hash']}"
    verified = cli("enquiries", "verify", "--expect", expect, "--json", config=new_config)
    report = json.loads(verified.stdout)
    assert report["ok"] is True
    assert report["rows"] == head["seq"] <= total
    kept = json.loads((restored / "var" / "enquiry-log-state.json").read_text())
    assert (kept["node"], kept["seq"], kept["hash"]) == ("DE", head["seq"], head["hash"])
    assert (
        json.loads(cli("records", "stats", "--json", config=new_config).stdout)["categories"][
            "travel_documents"
        ]
        == 200
    )

    # The restored node starts on its log (no --new-log) and answers a signed query.
    text = new_config.read_text()
    new_peer, new_local = free_port(), free_port()
    text = text.replace(f"port: {peer}", f"port: {new_peer}").replace(
        f"port: {local}", f"port: {new_local}"
    )
    new_config.write_text(text)
    procs.append(again := _run(new_config, new_local))
    query, token = _ask(fr, "D0000007")
    status, body = post_query(new_peer, token)
    assert status == 200, body
    claims = open_answer(
        body,
        key=read_signing_key(settings.path(settings.key_file)).public,
        peer="DE",
        me="FR",
        query_token=token,
        query=query,
        now=time.time(),
    )
    assert claims.results[0].status == "hit"
    _stop(again, new_config)


def test_a_restore_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    config, _, _, _ = _node(tmp_path)
    created = create_backup(load_settings(config), config, tmp_path / "backups")
    target = tmp_path / "target"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    done = cli("backup", "restore", str(created.path), "--to", str(target), check=False)
    assert done.returncode == 2
    assert f"{target} is not empty; a restore goes into a new directory" in done.stderr
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    # A state directory that is not empty is refused as well, before anything is written.
    empty = tmp_path / "empty"
    done = cli(
        "backup",
        "restore",
        str(created.path),
        "--to",
        str(empty),
        "--state-dir",
        str(target),
        check=False,
    )
    assert done.returncode == 2
    assert not empty.exists()


def test_keep_deletes_only_this_nodes_oldest_archives_once_the_new_one_is_whole(
    tmp_path: Path,
) -> None:
    config, _, _, _ = _node(tmp_path)
    out = tmp_path / "backups"
    first = create_backup(load_settings(config), config, out).path
    older = [out / f"ncb-DE-2026010{d}T000000Z.tar.gz" for d in (1, 2, 3)]
    for path in older:
        shutil.copy(first, path)
    others = [out / "ncb-FR-20260101T000000Z.tar.gz", out / "notes.txt", out / "ncb-DE-x.tar"]
    for path in others:
        path.write_text("not ours")
    made = cli("backup", "create", str(out), "--keep", "2", "--json", config=config)
    created = json.loads(made.stdout)
    assert sorted(created["removed"]) == sorted(str(p) for p in older)
    left = sorted(p.name for p in out.iterdir())
    assert left == sorted([first.name, Path(created["archive"]).name, *(p.name for p in others)])
    assert verify_backup(Path(created["archive"]), node=None).ok


def test_a_node_on_postgresql_is_dumped_and_restored_into_empty_databases(
    tmp_path: Path, pg_server: pgtemp.Server
) -> None:
    config, _, _ = init(tmp_path, "DE")
    names = [f"bk{os.getpid()}_{name}" for name in ("records", "log", "records2", "log2")]
    records, enquiries, records2, enquiries2 = (pg_server.create_database(n) for n in names)
    try:
        config.write_text(
            config.read_text()
            .replace("sqlite:///records.db", records)
            .replace("sqlite:///enquiries.db", enquiries)
        )
        data = tmp_path / "records.csv"
        data.write_text(RECORDS)
        cli("records", "import", str(data), "--category", "travel_documents", config=config)
        _fill_log(config, 300)
        created = create_backup(load_settings(config), config, tmp_path / "backups")
        assert [(d.backend, d.member) for d in created.manifest.databases] == [
            ("postgresql", "db/records.pgdump"),
            ("postgresql", "db/enquiries.pgdump"),
        ]
        assert created.manifest.log_seq == 300

        target = tmp_path / "restored"
        refused = cli("backup", "restore", str(created.path), "--to", str(target), check=False)
        assert refused.returncode == 2
        assert "give --records-url" in refused.stderr
        cli(
            "backup",
            "restore",
            str(created.path),
            "--to",
            str(target),
            "--records-url",
            records2,
            "--enquiries-url",
            enquiries2,
        )
        restored = target / "connector.yaml"
        head = f"{created.manifest.log_seq}:{created.manifest.log_hash}"
        report = json.loads(
            cli("enquiries", "verify", "--expect", head, "--json", config=restored).stdout
        )
        assert (report["ok"], report["rows"]) == (True, 300)
        stats = json.loads(cli("records", "stats", "--json", config=restored).stdout)
        assert stats["categories"]["travel_documents"] == 200
        # With PostgreSQL the kept checkpoint lives beside connector.yaml (§5d).
        kept = json.loads((target / "enquiry-log-state.json").read_text())
        assert kept["seq"] == 300
    finally:
        for name in names:
            pg_server.drop_database(name)


SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"


def test_the_daily_timer_runs_the_backup_as_the_service_user_in_the_same_sandbox(
    tmp_path: Path,
) -> None:
    service = (SYSTEMD / "ncb-connector-backup.service").read_text()
    timer = (SYSTEMD / "ncb-connector-backup.timer").read_text()
    lines = set(service.splitlines())
    assert (
        "ExecStart=/usr/bin/ncb-connector backup create /var/backups/ncb-connector --keep 14 "
        "--config /etc/ncb-connector/connector.yaml" in lines
    )
    assert {"Type=oneshot", "User=ncb-connector", "ReadWritePaths=/var/backups/ncb-connector"} <= (
        lines
    )
    assert {"OnCalendar=daily", "Persistent=true", "WantedBy=timers.target"} <= set(
        timer.splitlines()
    )
    # Every hardening line of the node's own unit, word for word.
    node = (SYSTEMD / "ncb-connector.service").read_text()
    hardening = node.split("# ---- Hardening", 1)[1].split("[Install]", 1)[0]
    settings = {x for x in hardening.splitlines()[1:] if x and not x.startswith("#")}
    assert settings <= lines, settings - lines

    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    # systemd-analyze checks that ExecStart's binary exists: the package installs it.
    (tmp_path / "ncb-connector-backup.service").write_text(
        service.replace("/usr/bin/ncb-connector", shutil.which("ncb-connector") or "/bin/true")
    )
    (tmp_path / "ncb-connector-backup.timer").write_text(timer)
    env = {**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_COLORS": "0"}
    units = [
        str(tmp_path / "ncb-connector-backup.service"),
        str(tmp_path / "ncb-connector-backup.timer"),
    ]
    done = subprocess.run(
        [tool, "verify", "--man=no", "--recursive-errors=no", *units],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert [x for x in done.stderr.splitlines() if "ncb-connector" in x] == [], done.stderr
    assert done.returncode == 0, done.stderr
    security = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", units[0]],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert "Overall exposure level for ncb-connector-backup.service: 1." in security.stdout


def test_a_restore_writes_only_where_it_chooses_even_from_a_self_signed_archive(
    tmp_path: Path,
) -> None:
    """An archive signed by the key it carries may come from anyone: a member named to climb
    out of the target is refused before anything is written."""
    config, _, _, _ = _node(tmp_path)
    archive = create_backup(load_settings(config), config, tmp_path / "b", compress=False).path
    rows = _members(archive)
    forger = SigningKey.generate()
    key_jwk = orjson.dumps(forger.private_jwk())
    evil = b"inbound: []\n"
    manifest = orjson.loads(parse_compact(rows[0][1]).payload)
    manifest["kid"] = forger.public.kid
    for member in manifest["members"]:
        if member["name"] == KEY:
            member.update(size=len(key_jwk), sha256=hashlib.sha256(key_jwk).hexdigest())
    climbing = "config/policies/../../../escaped.yaml"
    manifest["members"].append(
        {
            "name": climbing,
            "size": len(evil),
            "sha256": hashlib.sha256(evil).hexdigest(),
            "mode": "0644",
        }
    )
    info = tarfile.TarInfo(climbing)
    token = Signer(forger).sign_compact(orjson.dumps(manifest), typ=BACKUP_TYP)
    _rewrite(
        archive,
        [(rows[0][0], token)]
        + [(i, key_jwk if i.name == KEY else data) for i, data in rows[1:]]
        + [(info, evil)],
    )
    assert verify_backup(archive, node=None).ok  # whole, as its maker signed it
    target = tmp_path / "deep" / "er" / "target"
    done = cli("backup", "restore", str(archive), "--to", str(target), check=False)
    assert done.returncode == 2
    assert "which no backup writes; not restored" in done.stderr
    assert not target.exists()
    assert not (tmp_path / "escaped.yaml").exists()


def test_a_cut_or_foreign_file_is_not_a_whole_archive(tmp_path: Path) -> None:
    paths = init_node(tmp_path / "FR", node="FR", peer_port=0, local_port=0)
    archive = create_backup(load_settings(paths.config), paths.config, tmp_path / "b").path
    assert verify_backup(archive, node=None).ok
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    checked = verify_backup(cut, node=None)
    assert not checked.ok
    assert checked.manifest is None
    (problem,) = checked.problems
    assert problem.startswith(f"{cut} is not a whole backup archive")
    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as tar:
        tar.add(paths.config, arcname="connector.yaml")
    assert verify_backup(foreign, node=None).problems == (
        f"{foreign} holds no manifest.jws: not a backup archive",
    )
    done = cli("backup", "restore", str(cut), "--to", str(tmp_path / "r"), check=False)
    assert done.returncode == 2
    assert "is not restored" in done.stderr
    assert not (tmp_path / "r").exists()


def test_two_backups_in_one_second_are_both_kept(tmp_path: Path) -> None:
    """The daily timer and an admin may start one in the same second: the second archive is
    named -2, both verify, and --keep counts them in the order they were made."""
    config, _, _, _ = _node(tmp_path)
    out = tmp_path / "backups"
    settings = load_settings(config)
    first = create_backup(settings, config, out, clock=lambda: 1_790_000_000.0).path
    second = create_backup(settings, config, out, clock=lambda: 1_790_000_000.0).path
    assert first.name == "ncb-DE-20260921T141320Z.tar.gz"
    assert second.name == "ncb-DE-20260921T141320Z-2.tar.gz"
    assert verify_backup(first, node=None).ok
    assert verify_backup(second, node=None).ok
    third = create_backup(settings, config, out, clock=lambda: 1_790_000_000.0, keep=2)
    assert third.path.name == "ncb-DE-20260921T141320Z-3.tar.gz"
    assert list(third.removed) == [first]
    assert sorted(p.name for p in out.iterdir()) == [second.name, third.path.name]
