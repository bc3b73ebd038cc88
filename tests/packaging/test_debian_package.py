"""The Debian package, built by packaging/build-deb and installed on a fresh Debian 12.

One test, in phases (each timed, the times printed): build two packages from this tree (the
second with a later version), make a clean bookworm root with debootstrap, install the first
package into it with dpkg and apt, set a node up there as the admin guide says (init as the
service user, config and policy checks, systemd-analyze on the installed unit), start it
with the unit's own ExecStart line as the service user, ask it a signed query from outside
the root (its listeners are on the host's loopback: a chroot shares the network), upgrade
to the second package, and check that the config is unchanged, the enquiry log still
verifies and the node answers again. Needs root (chroot, mounts), debootstrap, debhelper and
Debian's archive (scripts/test.sh installs the tools)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.processes import free_port, wait_ready

from connector.crypto.jws import PublicKey, Signer, SigningKey
from connector.protocol import Check, make_query, open_answer, sign_query
from connector.vocabulary import AgencyKind, Category, Purpose

REPO = Path(__file__).resolve().parents[2]
BUILD_DEB = REPO / "packaging" / "build-deb"
UNIT = "/usr/lib/systemd/system/ncb-connector.service"
BACKUP_UNITS = (
    "/usr/lib/systemd/system/ncb-connector-backup.service",
    "/usr/lib/systemd/system/ncb-connector-backup.timer",
)
CONFIG = "/etc/ncb-connector/connector.yaml"
USER = "ncb-connector"
NUMBER = "C01X00T47"
REF = "FR:travel_documents:FR-0815"
# What the chroot's commands see: not the test's environment (pyenv, PYTHONPATH).
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
# debootstrap's result, kept between runs of one day on this machine (CI starts clean).
CACHE = Path("/tmp") / f"ncb-connector-bookworm-systemd-{datetime.now(UTC):%Y%m%d}.tar"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or os.geteuid() != 0,
        reason="installing into a chroot needs root on Linux",
    ),
]

_TLS = ssl.create_default_context()
_TLS.check_hostname = False
_TLS.verify_mode = ssl.CERT_NONE  # the pin checked is the node's key, on the signed answer


class Phases:
    """Wall-clock time of each phase, printed at the end (pytest -s, or -rA shows them)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.times[name] = time.monotonic() - start

    def report(self) -> str:
        return ", ".join(f"{name} {secs:.0f} s" for name, secs in self.times.items())


def bookworm_mirror() -> str:
    """The Debian mirror this machine's apt uses for bookworm (not its security suite)."""
    sources = Path("/etc/apt")
    for path in [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]:
        if not path.is_file():
            continue
        text = path.read_text()
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                if "bookworm" in fields.get("Suites", "").split():
                    return str(fields["URIs"].split()[0])
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["deb"] and "bookworm" in words:
                url = next(w for w in words[1:] if "://" in w)
                return url
    return "http://deb.debian.org/debian"


def run(*args: str | Path, timeout: float = 600, **kwargs: object) -> str:
    proc = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return str(proc.stdout)


class Root:
    """A Debian root to chroot into, with /proc and /dev mounted while it is used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mounted: list[Path] = []

    def mount(self) -> None:
        for target, args in (("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"])):
            where = self.path / target
            run("mount", *args, where)
            self.mounted.append(where)

    def unmount(self) -> None:
        while self.mounted:
            subprocess.run(["umount", "-l", str(self.mounted.pop())], check=False)

    def remove(self) -> None:
        """The root's few hundred megabytes, once nothing is mounted in it: with /dev still
        bound there, deleting it would delete the host's device nodes."""
        mounts = Path("/proc/self/mounts").read_text().split()
        if not any(m.startswith(f"{self.path}/") for m in mounts):
            shutil.rmtree(self.path, ignore_errors=True)

    def sh(self, *args: str, timeout: float = 600) -> str:
        """A command in the root, as root."""
        return run("chroot", self.path, *args, env=CHROOT_ENV, timeout=timeout)

    def as_user(self, *args: str) -> list[str]:
        """A command line for the service user (setpriv execs: no process in between)."""
        return [
            "chroot",
            str(self.path),
            "setpriv",
            f"--reuid={USER}",
            f"--regid={USER}",
            "--init-groups",
            "--",
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            "LANG=C.UTF-8",
            f"HOME=/var/lib/{USER}",
            *args,
        ]

    def user(self, *args: str) -> str:
        return run(*self.as_user(*args), timeout=120)

    def install(self, deb: Path) -> str:
        """dpkg -i, then apt-get -f install for what it depends on; what both printed."""
        shutil.copy(deb, self.path / "tmp" / deb.name)
        apt = {**CHROOT_ENV, "DEBIAN_FRONTEND": "noninteractive"}
        dpkg = subprocess.run(
            ["chroot", str(self.path), "dpkg", "-i", f"/tmp/{deb.name}"],
            env=apt,
            capture_output=True,
            text=True,
            check=False,  # fails on the missing dependencies, which the next line brings
            timeout=600,
        )
        fixed = run(
            "chroot", self.path, "apt-get", "-f", "install", "-y", "-q", env=apt, timeout=900
        )
        status = self.sh("dpkg-query", "-W", "-f=${Status} ${Version}", "ncb-connector")
        assert status.startswith("install ok installed "), f"{status}\n{dpkg.stdout}{dpkg.stderr}"
        return dpkg.stdout + dpkg.stderr + fixed


def build(out: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.Popen(
        [str(BUILD_DEB), "--out", str(out), "--xz-level", "1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def built(proc: subprocess.Popen[str]) -> Path:
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr
    return Path(stdout.strip().splitlines()[-1])


def bootstrap(root: Path) -> None:
    """A minimal bookworm (debootstrap's minbase) with systemd, as on a server: what the
    package needs beyond it (python3.11), apt must find from the package's Depends."""
    if CACHE.exists():
        root.mkdir()
        run("tar", "-xpf", CACHE, "-C", root)
        return
    run(
        "debootstrap", "--variant=minbase", "--include=systemd", "bookworm", root,
        bookworm_mirror(), timeout=900,
    )  # fmt: skip
    partial = CACHE.with_suffix(".partial")
    run("tar", "-cpf", partial, "-C", root, ".")
    partial.rename(CACHE)


def unit_line(root: Path, key: str) -> str:
    values = [
        line.split("=", 1)[1]
        for line in (root / UNIT.lstrip("/")).read_text().splitlines()
        if line.startswith(f"{key}=")
    ]
    assert len(values) == 1, (key, values)
    return values[0]


class Node:
    """The node in the root, run as the unit runs it."""

    def __init__(self, root: Root, local: int) -> None:
        execstart = shlex.split(unit_line(root.path, "ExecStart"))
        environment = unit_line(root.path, "Environment")
        self.proc = subprocess.Popen(
            root.as_user(environment, *execstart),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_ready(local, self.proc)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        _, stderr = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def ask(peer_port: int, signer: Signer, node_key: PublicKey) -> list[str]:
    """A query signed by DE's key, sent from this process; the refs of the verified answer."""
    query = make_query(
        iss="DE",
        aud="FR",
        sub="de/1",
        agency_kind=AgencyKind.NCB,
        purpose=Purpose.BORDER_CONTROL,
        checks=(Check(id="1", category=Category.TRAVEL_DOCUMENTS, criteria={"number": NUMBER}),),
    )
    token = sign_query(query, signer)
    request = urllib.request.Request(
        f"https://127.0.0.1:{peer_port}/v1/query",
        data=token,
        headers={"Content-Type": "application/jose"},
    )
    with urllib.request.urlopen(request, timeout=30, context=_TLS) as resp:
        answer = open_answer(
            resp.read(),
            key=node_key,
            peer="FR",
            me="DE",
            query_token=token,
            query=query,
            now=time.time(),
        )
    return [f"{r.status}:{hit.ref}" for r in answer.results for hit in r.hits] or [
        r.status for r in answer.results
    ]


def fingerprints(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_the_package_installs_runs_and_upgrades_on_a_fresh_debian_12(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    for tool in ("debootstrap", "dpkg-buildpackage", "chroot", "mount"):
        assert shutil.which(tool), f"{tool} is missing: scripts/test.sh installs it"
    tmp = tmp_path_factory.mktemp("deb")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    phases = Phases()
    root = Root(tmp / "root")
    node: Node | None = None
    lintian: subprocess.Popen[str] | None = None
    try:
        # The two builds and debootstrap at once: downloads overlap with compression.
        with phases("build both packages and debootstrap"):
            first = build(tmp / "first")
            second = build(tmp / "second", "--version", f"{version}+1")
            with phases("(of which debootstrap, or its cached tarball)"):
                bootstrap(root.path)
            first_deb, second_deb = built(first), built(second)
        assert first_deb.name.startswith(f"ncb-connector_{version}_"), first_deb
        shutil.copy("/etc/resolv.conf", root.path / "etc" / "resolv.conf")
        root.mount()

        # lintian meanwhile, on the other core: errors fail the test (overrides and the
        # warnings left are listed with their reasons in packaging/README.md).
        lintian = subprocess.Popen(
            ["lintian", "--fail-on", "error", str(first_deb)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        with phases("install (dpkg -i, apt-get -f install)"):
            root.sh("apt-get", "update", "-q")
            root.install(first_deb)
        # systemd-sysusers made it from the package's snippet (adduser would add a GECOS ",,,").
        passwd = (root.path / "etc" / "passwd").read_text()
        assert re.search(rf"^{USER}:x:\d+:\d+:NCB connector:/var/lib/{USER}:", passwd, re.M), passwd
        etc, var = root.path / "etc" / "ncb-connector", root.path / "var" / "lib" / "ncb-connector"
        assert oct(etc.stat().st_mode & 0o7777) == oct(0o750)
        assert oct(var.stat().st_mode & 0o7777) == oct(0o700)
        conffiles = root.sh("dpkg-query", "-W", "-f=${Conffiles}", "ncb-connector")
        examples = {p.name for p in (REPO / "policies").glob("*.yaml")}
        assert {Path(line.split()[0]).name for line in conffiles.splitlines() if line} == examples
        monitoring = root.path / "usr" / "share" / "ncb-connector" / "monitoring"
        shipped = {p.name for p in (REPO / "packaging" / "monitoring").iterdir()}
        assert {p.name for p in monitoring.iterdir()} == shipped, list(monitoring.iterdir())
        # The operator console's templates, styles and compiled catalogues (package data).
        site = root.path / "opt" / "ncb-connector" / "lib" / "python3.11" / "site-packages"
        console = site / "connector" / "console"
        assert (console / "locale" / "fr" / "LC_MESSAGES" / "console.mo").is_file()
        templates = {p.name for p in (REPO / "connector" / "console" / "templates").iterdir()}
        assert {p.name for p in (console / "templates").iterdir()} == templates
        assert {p.name for p in (console / "static").iterdir()} == {"console.css", "console.js"}

        with phases("set the node up (init, checks, systemd-analyze)"):
            peer_port, local_port = free_port(), free_port()
            root.user(
                "ncb-connector", "init", "--node", "FR", "--dir", "/etc/ncb-connector",
                "--state-dir", "/var/lib/ncb-connector",
                "--peer-port", str(peer_port), "--local-port", str(local_port),
            )  # fmt: skip
            # The shipped example: every peer may learn whether a document is held.
            root.user(
                "cp",
                "/etc/ncb-connector/examples/example-objects-only.yaml",
                "/etc/ncb-connector/policies/10-objects.yaml",
            )
            stolen = root.path / "tmp" / "stolen.csv"
            with stolen.open("w", newline="") as f:
                rows = [["id", "number", "country", "status"], ["FR-0815", NUMBER, "FR", "stolen"]]
                csv.writer(f).writerows(rows)
            stolen.chmod(0o644)
            root.user("ncb-connector", "records", "import", "/tmp/stolen.csv",
                      "--category", "travel_documents")  # fmt: skip
            de = Signer(SigningKey.generate())
            root.user(
                "ncb-connector", "peers", "add", "DE", "--url", "http://127.0.0.1:9",
                "--insecure", "--key", json.dumps(de.public.jwk()),
            )  # fmt: skip
            # Argon2 and TOTP load from the package's wheels: no account yet.
            assert json.loads(root.user("ncb-connector", "users", "list", "--json")) == []
            checked = json.loads(root.user("ncb-connector", "config", "check", "--json"))
            assert checked["ok"] is True
            assert checked["node"] == "FR"
            policy = json.loads(root.user("ncb-connector", "policy", "check", "--json"))
            assert policy["ok"] is True
            assert policy["errors"] == []
            root.sh("systemd-analyze", "verify", "--man=no", UNIT, *BACKUP_UNITS)
            security = root.sh("systemd-analyze", "security", "--offline=true", "--no-pager", UNIT)
            exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security)
            assert exposure, security
            assert float(exposure.group(1)) <= 1.5, security
            keys = json.loads(root.user("ncb-connector", "keys", "show", "--json"))
            node_key = PublicKey.from_jwk(keys["jwk"])

        with phases("start with the unit's ExecStart and answer a signed query"):
            node = Node(root, local_port)
            assert ask(peer_port, de, node_key) == [f"hit:{REF}"]
            node.stop()
            node = None

        config_before = fingerprints(etc)
        with phases("upgrade to the second package"):
            upgraded = root.install(second_deb)
        # The postinst brought the databases to the new version's schema, as the user.
        assert "records: already at " in upgraded, upgraded
        assert "enquiry log: already at " in upgraded, upgraded
        assert root.sh("dpkg-query", "-W", "-f=${Version}", "ncb-connector") == f"{version}+1"
        assert fingerprints(etc) == config_before
        verified = json.loads(root.user("ncb-connector", "enquiries", "verify", "--json"))
        assert verified["ok"] is True
        assert verified["rows"] == 1
        node = Node(root, local_port)
        assert ask(peer_port, de, node_key) == [f"hit:{REF}"]
        node.stop()
        node = None

        with phases("lintian (beside the install), remove, purge"):
            report, _ = lintian.communicate(timeout=600)
            assert lintian.returncode == 0, report
            assert not re.search(r"^E: ", report, re.M), report
            # remove leaves the node; purge takes it.
            root.sh("dpkg", "--remove", "ncb-connector")
            assert (etc / "connector.yaml").exists()
            assert (var / "enquiries.db").exists()
            assert not (root.path / "opt" / "ncb-connector").exists()
            root.sh("dpkg", "--purge", "ncb-connector")
            assert not etc.exists()
            assert not var.exists()
    finally:
        if node is not None:
            node.kill()
        if lintian is not None and lintian.poll() is None:
            lintian.kill()
            lintian.wait()
        root.unmount()
        root.remove()
        print(f"\nDebian package test: {phases.report()}")
