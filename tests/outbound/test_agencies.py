"""Agencies and tokens; a subject split into checks; breakers; `search` from the terminal."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from support.processes import CLI, cli

from connector.demo import _mrz_td3, network
from connector.errors import ConfigError, InvalidCriteria, Unauthorized
from connector.outbound.agencies import (
    add_agency,
    authenticate,
    load_agencies,
    rotate_agency,
    set_agency_enabled,
)
from connector.outbound.subject import Subject, subject_checks
from connector.peers.breaker import Breakers
from connector.vocabulary import AgencyKind, Category

ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"


def test_tokens_are_stored_hashed_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "agencies.json"
    agency, token = add_agency(path, "border-police", AgencyKind.BORDER, now=1.0)
    assert token.startswith("ncb.border-police.")
    assert token not in path.read_text()
    assert agency.token_sha256 in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    agencies = load_agencies(path)
    assert authenticate(agencies, f"Bearer {token}").id == "border-police"
    for header in (None, "", "Basic abc", f"Bearer {token}x", "Bearer ncb.other.x" + "A" * 42):
        with pytest.raises(Unauthorized):
            authenticate(agencies, header)
    with pytest.raises(ConfigError):
        add_agency(path, "border-police", AgencyKind.BORDER, now=2.0)
    with pytest.raises(ConfigError):
        add_agency(path, "no spaces", AgencyKind.BORDER, now=2.0)
    _, new = rotate_agency(path, "border-police", now=3.0)
    with pytest.raises(Unauthorized):
        authenticate(load_agencies(path), f"Bearer {token}")
    set_agency_enabled(path, "border-police", False, now=4.0)
    with pytest.raises(Unauthorized, match="disabled"):
        authenticate(load_agencies(path), f"Bearer {new}")


def test_agencies_commands(tmp_path: Path) -> None:
    cli(
        "init",
        "--node",
        "FR",
        "--dir",
        str(tmp_path / "FR"),
        "--peer-port",
        "0",
        "--local-port",
        "0",
    )
    config = tmp_path / "FR" / "connector.yaml"
    done = cli("agencies", "add", "customs-fr", "--kind", "customs", config=config)
    token = done.stdout.strip()
    assert token.startswith("ncb.customs-fr.")
    assert "only now" in done.stderr
    listed = cli("agencies", "list", "--json", config=config).stdout
    assert token not in listed
    assert json.loads(listed)[0] | {"created_at": None} == {
        "id": "customs-fr",
        "kind": "customs",
        "enabled": True,
        "created_at": None,
        "rotated_at": None,
        "disabled_at": None,
    }
    # Times in --json are ISO 8601 in UTC, as everywhere else scripts read them.
    assert re.fullmatch(ISO_UTC, json.loads(listed)[0]["created_at"])
    cli("agencies", "disable", "customs-fr", config=config)
    disabled = json.loads(cli("agencies", "list", "--json", config=config).stdout)[0]
    assert disabled["enabled"] is False
    assert re.fullmatch(ISO_UTC, disabled["disabled_at"])
    rotated = cli("agencies", "rotate", "customs-fr", config=config).stdout.strip()
    assert rotated != token
    missing = cli("agencies", "rotate", "nobody", config=config, check=False)
    assert missing.returncode != 0
    assert "no agency nobody" in missing.stderr


def test_subject_becomes_one_check_per_category() -> None:
    mrz = _mrz_td3("DE1234567", "D<<", "EXEMPLE", "JEAN")
    checks = subject_checks(Subject(mrz=mrz, plate="AB-123-CD", plate_country="FR"))
    assert [(c.id, c.category) for c in checks] == [
        ("document", Category.TRAVEL_DOCUMENTS),
        ("wanted_person", Category.WANTED_PERSONS),
        ("terrorism_suspect", Category.TERRORISM_SUSPECTS),
        ("vehicle", Category.VEHICLES),
    ]
    person = dict(checks[1].criteria)
    assert person == {
        "document_number": "DE1234567",
        "first_name": "JEAN",
        "last_name": "EXEMPLE",
        "birth_date": "1985-03-12",
    }
    assert dict(checks[3].criteria) == {"plate": "AB-123-CD", "plate_country": "FR"}
    by_name = subject_checks(
        Subject(first_name="Erika", last_name="Mustermann", birth_date="1964-08-12")
    )
    assert [c.id for c in by_name] == ["wanted_person", "terrorism_suspect"]
    assert subject_checks(Subject(birth_date="1964")) == ()
    with pytest.raises(InvalidCriteria):
        subject_checks(Subject(mrz=mrz[:-1] + ("0" if mrz[-1] != "0" else "1")))


def test_breaker_opens_probes_and_closes() -> None:
    b = Breakers(threshold=3, cooldown=5.0, max_cooldown=20.0)
    for t in (0.0, 1.0):
        b.failure("DE", t)
        assert b.allow("DE", t)
    b.failure("DE", 2.0)
    assert b.state("DE", 2.0) == "open"
    assert not b.allow("DE", 6.9)
    assert b.allow("DE", 7.0)  # one probe
    assert not b.allow("DE", 7.0)  # and only one
    b.failure("DE", 7.5)  # the probe failed: twice the wait
    assert not b.allow("DE", 16.0)
    assert b.allow("DE", 17.5)
    b.success("DE")
    assert b.state("DE", 17.6) == "closed"
    assert b.allow("DE", 17.6)


async def test_search_from_the_terminal(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE", "GB"]) as net:
        config = net["FR"].node.settings.base_dir / "connector.yaml"
        env = {**os.environ, "COLUMNS": "200", "NCB_CONNECTOR_CONFIG": str(config)}
        # The nodes run in this event loop: the command must not block it.
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            "search",
            "--number",
            "DE1234567",
            "--country",
            "DE",
            "--json",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        started = time.monotonic()
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 3, stderr.decode()  # a hit somewhere
        doc = json.loads(stdout)
        checks = {c["id"]: c for c in doc["checks"]}
        assert {p["peer"]: p["status"] for p in checks["document"]["peers"]} == {
            "DE": "hit",
            "GB": "no_hit",
        }
        # A document number is also looked for among wanted persons, which the demo's
        # outbound rule does not let the NCB ask about: denied here, never sent.
        assert {p["reason"] for p in checks["wanted_person"]["peers"]} == {"outbound_policy"}
        assert time.monotonic() - started < 30
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            "search",
            "--plate",
            "AB-123-CD",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 4  # no peer the outbound policy allows: nobody asked
        assert b"outbound policy" in stderr
    assert sys.executable


def test_a_damaged_agencies_file_is_named_in_words(tmp_path: Path) -> None:
    """An agency entry with a wrong field reads as `field: reason`, not pydantic's dump."""
    path = tmp_path / "agencies.json"
    path.write_bytes(b'{"agencies": [{"id": "border-cdg", "kind": "pirates"}]}')
    with pytest.raises(ConfigError) as caught:
        load_agencies(path)
    detail = caught.value.detail
    assert detail.startswith(f"{path}: not a valid agencies file: agencies.0.kind: ")
    assert "pydantic" not in detail
    assert "For further information" not in detail
    path.write_bytes(b"{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        load_agencies(path)
