"""README.md's "An NCB's first hour", run as written: every command of the block, in order,
in real processes on loopback, each checked for the exit status its --help documents and
for what it should print. The commands are read from the README, never copied here.

What the test changes, and only that: the documented directories become temporary ones;
`sudo -u ncb-connector` is dropped (the test runs as its own user); `init` gets free ports;
the example peer URL becomes a real DE node's; `$EDITOR` writes a policy; `ID` is a real
enquiry id; `peers add --fetch` is answered "y" at its prompt."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.processes import CLI, cli, free_port, init, readyz, wait_for, wait_ready
from support.readme import README, commands, sh_block

ETC, VAR = "/etc/ncb-connector", "/var/lib/ncb-connector"
EXAMPLE_DE = "https://ncb.de.example:8443"
NUMBER = "C01X00T47"  # the document the README's query and search ask about
DE_REF = "DE:travel_documents:BKA-0815"

# DE answers FR about documents and persons; FR, what the admin writes at `$EDITOR`:
# DE may ask about documents, and the NCB ("ncb", as `query` and `search` ask) may ask DE.
DE_POLICY = """\
inbound:
  - name: FR asks
    from: [FR]
    categories: [travel_documents, wanted_persons, terrorism_suspects]
    answer: full
"""
FR_POLICY = """\
inbound:
  - name: DE asks about documents
    from: [DE]
    categories: [travel_documents]
    answer: hit
outbound:
  - name: the NCB asks DE
    agency: ncb
    categories: [travel_documents, wanted_persons, terrorism_suspects]
    to: [DE]
"""


@dataclass
class Node:
    config: Path
    local: int
    proc: subprocess.Popen[str]
    log: Path


def start(config: Path, local: int, log: Path, cwd: Path, env: dict[str, str]) -> Node:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*CLI, "run"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            text=True,
        )
    try:
        wait_ready(local, proc)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log.read_text()}") from None
    return Node(config, local, proc, log)


def stop(node: Node) -> None:
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(timeout=30) == 0, node.log.read_text()


@pytest.fixture
def de(tmp_path: Path) -> Iterator[tuple[Node, int]]:
    """A running DE node holding a stolen German passport, answering FR once it knows FR."""
    config, peer, local = init(tmp_path, "DE")
    (config.parent / "policies" / "10-fr.yaml").write_text(DE_POLICY)
    data = tmp_path / "de.csv"
    data.write_text(f"id,document_number,document_country,status\nBKA-0815,{NUMBER},DE,stolen\n")
    cli("records", "import", str(data), "--category", "travel_documents", config=config)
    env = {**os.environ, "NCB_CONNECTOR_CONFIG": str(config)}
    node = start(config, local, tmp_path / "de.log", tmp_path, env)
    try:
        yield node, peer
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(timeout=10)


@dataclass
class FirstHour:
    """The state the README's commands build up, and what each of them must show."""

    tmp: Path
    de: Node
    de_url: str
    etc: Path
    var: Path
    work: Path
    env: dict[str, str]
    ports: tuple[int, int] = field(default_factory=lambda: (free_port(), free_port()))
    fr: Node | None = None
    seen: dict[str, str] = field(default_factory=dict)
    checked: set[str] = field(default_factory=set)

    def words(self, raw: list[str]) -> list[str]:
        mapped = [w.replace(ETC, str(self.etc)).replace(VAR, str(self.var)) for w in raw]
        mapped = [self.de_url if w == EXAMPLE_DE else w for w in mapped]
        if mapped[:3] == ["sudo", "-u", "ncb-connector"]:
            mapped = mapped[3:]
        return mapped

    def step(self, raw: list[str]) -> None:
        words = self.words(raw)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            self.env[name] = value
            return
        if words[0] == "$EDITOR":
            self.edit(Path(words[1]))
            return
        assert words[0] == "ncb-connector", f"the test does not know how to run {raw}"
        assert not any("$" in w for w in words), f"unexpanded variable in {raw}"
        args = words[1:]
        key = " ".join(a for a in args[:2] if not a.startswith("-"))
        if args[0] == "init":
            args += ["--peer-port", str(self.ports[0]), "--local-port", str(self.ports[1])]
        if args[0] == "run":
            self.run()
            return
        if args[:2] == ["enquiries", "show"]:
            args = [self.seen["enquiry"] if a == "ID" else a for a in args]
        wants_yes = "--fetch" in args and "--yes" not in args
        proc = subprocess.run(
            [*CLI, *args],
            cwd=self.work,
            env=self.env,
            input="y\n" if wants_yes else "",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        expect = EXPECT.get(key, lambda _, p: ok(p))
        expect(self, proc)
        self.checked.add(key)

    def edit(self, path: Path) -> None:
        assert path.parent == self.etc / "policies", path
        path.write_text(FR_POLICY)
        self.checked.add("$EDITOR")

    def run(self) -> None:
        self.fr = start(
            self.etc / "connector.yaml", self.ports[1], self.tmp / "fr.log", self.work, self.env
        )
        state = readyz(self.ports[1], self.etc / "connector.yaml")
        assert state["status"] == "ready", state
        assert state["peers"] == 1
        assert state["policy_digest"] == self.seen["policy digest"]
        self.checked.add("run")

    # Set-up DE needs once FR exists: DE's admin pins FR from what FR's admin sent.
    def trust_fr_at_de(self) -> None:
        fr = json.loads(cli("keys", "show", "--json", config=self.etc / "connector.yaml").stdout)
        cli(
            "peers",
            "add",
            "FR",
            "--url",
            f"https://127.0.0.1:{self.ports[0]}",
            "--key",
            json.dumps(fr["jwk"]),
            "--tls-fingerprint",
            fr["tls_fingerprint"],
            config=self.de.config,
        )
        self.de.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: readyz(self.de.local, self.de.config)["peers"] == 1)


def ok(proc: subprocess.CompletedProcess[str], status: int = 0) -> str:
    assert proc.returncode == status, (
        f"{proc.args[3:]} exited {proc.returncode}, not {status}\n{proc.stdout}\n{proc.stderr}"
    )
    assert "Traceback" not in proc.stderr
    return proc.stdout


def table_row(out: str, first: str) -> str:
    """The table row whose first column is `first`."""
    rows = [line for line in out.splitlines() if re.match(rf"│ {re.escape(first)}\s+│", line)]
    assert len(rows) == 1, out
    return rows[0]


def init_(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    assert f"Node FR created in {t.etc}" in ok(p)
    assert f"sqlite:///{t.var}/records.db" in (t.etc / "connector.yaml").read_text()
    t.trust_fr_at_de()


def keys_show(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    out = ok(p)
    kid = json.loads((t.etc / "keys" / "node.jwk").read_text())["kid"]
    assert f"node             FR\nurl              https://127.0.0.1:{t.ports[0]}\n" in out
    assert f"\nthumbprint       {kid}\n" in out
    assert re.search(r"\ntls fingerprint  ([0-9A-F]{2}:){31}[0-9A-F]{2}\n", out)


def peers_add(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    out = ok(p)
    de = json.loads(cli("keys", "show", "--json", config=t.de.config).stdout)
    assert f"peer DE at {t.de_url}\n  key thumbprint   {de['thumbprint']}\n" in out
    assert "Pin this key and fingerprint? [y/N]: " in out
    assert f"peer DE added: key {de['thumbprint']}, tls {de['tls_fingerprint']}" in out
    pinned = json.loads(cli("peers", "list", "--json", config=t.etc / "connector.yaml").stdout)
    assert [(x["id"], x["keys"]) for x in pinned] == [("DE", [de["thumbprint"]])]


def records_import(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    assert "1 inserted, 0 updated, 0 unchanged, 0 removed, 0 rejected" in ok(p)


def records_sync(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    # The README: until sources.yaml names a source, "no sources", exit 2.
    ok(p, 2)
    assert p.stderr.startswith(f"error: no sources: {t.etc / 'sources.yaml'} does not exist.")
    assert "docs/records.md" in p.stderr


def policy_check(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    found = re.search(r"^ok: 1 inbound, 1 outbound rule\(s\), 0 warning\(s\), (sha256:\w+)$", ok(p))
    assert found, p.stdout
    t.seen["policy digest"] = found.group(1)


def query(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    out = ok(p, 3)  # documented: 3 a hit
    assert "DE answered in" in out
    row = table_row(out, "1")
    assert "│ hit " in row
    assert DE_REF in row
    assert f"document_number={NUMBER}, document_country=DE" in row


def agencies_add(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    token = ok(p).strip()
    assert "agency border-cdg (border) added" in p.stderr
    assert token.startswith("ncb.border-cdg."), token
    assert token not in (t.var / "agencies.json").read_text()  # only its hash is kept
    # The running node takes the token: past the token check, the outbound policy (which
    # lets only "ncb" ask) refuses, and nothing is sent or logged.
    request = urllib.request.Request(
        f"http://127.0.0.1:{t.ports[1]}/local/v1/checks",
        data=json.dumps(
            {"purpose": "border_control", "sub": "4711", "subject": {"document_number": NUMBER}}
        ).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    assert b"outbound_denied" in refused.value.read()


def search(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    out = ok(p, 3)  # documented: 3 a hit somewhere
    national, de = table_row(out, "national"), table_row(out, "DE")
    assert re.match(r"│ national\s+│ hit \(1\)\s+│ no_hit\s+│ no_hit ", national), national
    assert "FR:travel_documents:" in national
    assert re.match(r"│ DE\s+│ hit \(1\)\s+│ no_hit\s+│ no_hit\s+│\s+\d+ │ ", de), de
    assert DE_REF in de
    assert "1 peer(s) in " in out
    assert ": 1 answered" in out


def peers_status(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    row = table_row(ok(p), "DE")
    assert re.match(r"│ DE\s+│ up\s+│ \d+ ms\s+│ ok\s+│ ok\s+│", row), row


def enquiries_list(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    out = ok(p)
    rows = json.loads(cli("enquiries", "list", "--json", config=t.etc / "connector.yaml").stdout)
    assert [(r["direction"], r["peer"], r["hit_refs"]) for r in rows] == [
        ("out", "DE", [DE_REF]),  # query
        ("out", "DE", [DE_REF]),  # search
    ]
    for n, r in enumerate(rows, 1):
        assert re.search(rf"│ {n} │ {r['id']} │ [\d: -]+\.\d+ │ out │ DE ", out), out
    t.seen["enquiry"] = rows[0]["id"]


def enquiries_show(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    shown = json.loads(ok(p))
    assert shown["id"] == t.seen["enquiry"]
    assert shown["rules"] == ["the NCB asks DE"]
    assert shown["policy_digest"] == t.seen["policy digest"]
    assert shown["checks"] == [
        {
            "id": "1",
            "category": "travel_documents",
            "criteria": {"document_number": NUMBER, "document_country": "DE"},
        }
    ]
    assert shown["query_token"].count(".") == 2  # the signed query, as sent


def enquiries_verify(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    lines = ok(p).splitlines()
    assert lines[0].startswith("ok: 2 row(s), chain head "), lines
    assert lines[-1].count(".") == 2  # the signed checkpoint


def audit_list(t: FirstHour, p: subprocess.CompletedProcess[str]) -> None:
    out = ok(p)
    entries = json.loads(cli("audit", "list", "--json", config=t.etc / "connector.yaml").stdout)
    # The commands above that changed the node, in order; the readers and `records sync`
    # (no sources: nothing changed) left nothing.
    assert [(e["action"], e["target"]) for e in entries] == [
        ("node.initialized", "FR"),
        ("peer.added", "DE"),
        ("records.imported", "travel_documents"),
        ("agency.added", "probe"),  # this test's, to ask /readyz (support.processes.readyz)
        ("agency.added", "border-cdg"),
    ]
    assert re.search(r"│ 5 │ [\d: -]+ │ \S+\s+│ agency.added\s+│ border-cdg", out), out


EXPECT: dict[str, Callable[[FirstHour, subprocess.CompletedProcess[str]], None]] = {
    "init": init_,
    "keys show": keys_show,
    "peers add": peers_add,
    "records import": records_import,
    "records sync": records_sync,
    "policy check": policy_check,
    "query": query,
    "agencies add": agencies_add,
    "search": search,
    "peers status": peers_status,
    "enquiries list": enquiries_list,
    "enquiries show": enquiries_show,
    "enquiries verify": enquiries_verify,
    "audit list": audit_list,
}


def test_the_program_the_readme_names_is_the_one_installed() -> None:
    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["ncb-connector"] == "connector.cli:main"  # = python -m connector


def test_an_ncbs_first_hour(tmp_path: Path, de: tuple[Node, int]) -> None:
    de_node, de_peer = de
    work = tmp_path / "work"
    work.mkdir()
    # The file the README imports, in the admin's working directory (docs/records.md).
    (work / "stolen.csv").write_text(
        "document_number,document_country,document_type,status,reported_on,holder_name\n"
        f"{NUMBER},DE,P,stolen,2026-01-02,Erika Muster\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NCB_CONNECTOR_CONFIG"}
    t = FirstHour(
        tmp=tmp_path,
        de=de_node,
        de_url=f"https://127.0.0.1:{de_peer}",
        etc=tmp_path / "etc",
        var=tmp_path / "var",
        work=work,
        env={**env, "COLUMNS": "200"},
    )
    steps = commands(sh_block("An NCB's first hour"))
    try:
        for words in steps:
            t.step(words)
        assert t.env["NCB_CONNECTOR_CONFIG"] == str(t.etc / "connector.yaml")
        # Every check above ran: a README the parser misread would not pass for a short one.
        assert t.checked == {*EXPECT, "$EDITOR", "run"}, t.checked
        assert t.fr is not None
        stop(t.fr)
        stop(de_node)
    finally:
        if t.fr is not None and t.fr.proc.poll() is None:
            t.fr.proc.kill()
            t.fr.proc.wait(timeout=10)
