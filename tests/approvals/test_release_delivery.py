"""A release's way to the agency across real nodes: the release stream, polls that are not
refusals, and the querying NCB's view of what it waits for."""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator
from structlog.testing import capture_logs
from support.approvals import HELD, OPERATOR, REF, Net, two_nodes
from support.docs import abridged, example, keys_shown
from support.openapi import schema
from support.processes import cli

from connector.errors import PeerRejected
from connector.outbound.agencies import add_agency, set_agency_enabled
from connector.peers.client import PeerClient, peer_session
from connector.protocol import sign_release_request
from connector.vocabulary import AgencyKind

net = pytest.fixture(two_nodes("1h", "  stream_heartbeat_s: 1\n"))
short = pytest.fixture(two_nodes("1h", "  stream_max_s: 2\n"))


def _openapi() -> dict[str, Any]:
    text = resources.files("connector").joinpath("data/local-api.openapi.yaml").read_text()
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


class Stream:
    """One held-open `GET /local/v1/checks/{id}/stream`, read a line at a time."""

    def __init__(self, resp: aiohttp.ClientResponse, validator: Draft202012Validator) -> None:
        self.resp = resp
        self.validator = validator

    async def next(self, seconds: float = 15) -> dict[str, Any]:
        line = await asyncio.wait_for(self.resp.content.readline(), seconds)
        assert line, "the stream ended"
        event: dict[str, Any] = orjson.loads(line)
        self.validator.validate(event)
        return event


def _stream_url(net: Net, check_id: str) -> str:
    return net.local("FR") + f"/local/v1/checks/{check_id}/stream"


async def _post_stream(net: Net) -> list[dict[str, Any]]:
    """The border police's check at DE through FR's POST stream, every event of it."""
    body = {
        "purpose": "border_control",
        "sub": "4711",
        "checks": [{"id": "doc", "category": "travel_documents", "criteria": HELD}],
        "peers": ["DE"],
        "deadline_ms": 5000,
    }
    async with net.session.post(
        net.local("FR") + "/local/v1/checks/stream", json=body, headers=net.auth
    ) as resp:
        assert resp.status == 200
        return [orjson.loads(line) for line in (await resp.read()).splitlines()]


async def test_the_stream_shows_the_release_once_and_only_to_its_agency(net: Net) -> None:
    openapi = _openapi()
    events = await _post_stream(net)
    for e in events:
        schema("StreamEvent", openapi).validate(e)
    check_id = events[0]["id"]
    (peer,) = [e for e in events if e["event"] == "peer"]
    assert peer["results"][0]["approval"]["status"] == "pending"
    # The check's stream ends where its releases go on.
    assert events[-1]["event"] == "done"
    assert events[-1]["releases"] == f"/local/v1/checks/{check_id}/stream"

    # Another agency of the same node learns nothing of it, held open or not.
    fr = net.nodes["FR"].node.settings
    other = add_agency(
        fr.state_path(fr.federation.agencies_file), "customs", AgencyKind.CUSTOMS, now=0
    )[1]
    theirs = {"Authorization": f"Bearer {other}"}
    for url in (_stream_url(net, check_id), net.local("FR") + f"/local/v1/checks/{check_id}"):
        async with net.session.get(url, headers=theirs) as resp:
            assert resp.status == 404
            assert (await resp.json())["code"] == "not_found"

    validator = schema("ReleaseStreamEvent", openapi)
    async with net.session.get(_stream_url(net, check_id), headers=net.auth) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/x-ndjson")
        stream = Stream(resp, validator)
        first = await stream.next()
        assert (first["event"], first["id"], first["complete"]) == ("check", check_id, False)
        assert [r["state"] for r in first["releases"]] == ["pending"]
        # Nothing decided yet: the stream stays open, with heartbeats (every second here).
        assert (await stream.next())["event"] == "heartbeat"

        await net.approvals.approve(
            first["releases"][0]["approval"], operator=OPERATOR, reason="match confirmed"
        )
        seen = [first]
        while (event := await stream.next())["event"] != "done":
            seen.append(event)
        seen.append(event)
        releases = [e for e in seen if e["event"] == "release"]
        assert {e["event"] for e in seen[1:-1]} <= {"release", "heartbeat"}
        (release,) = releases  # once
        assert (release["check"], release["peer"], release["state"]) == (
            check_id,
            "DE",
            "released",
        )
        (result,) = release["results"]
        assert (result["status"], result["level"]) == ("hit", "full")
        assert result["hits"][0]["ref"] == REF
        assert result["hits"][0]["record"]["holder_name"] == "Jean Exemple"
        assert (event["complete"], event["ended"]) == (True, "complete")
        assert await resp.content.read() == b""  # and the stream ends

    # docs/local-api.md's examples, abridged there, show only members the real ones have,
    # the stream's events in the real order.
    status, after = await net.released(check_id)
    assert status == 200
    keys_shown(abridged(example("local-api.md", "check-releases")), after, "check")
    shown = [abridged(line) for line in example("local-api.md", "release-stream").splitlines()]
    real = {e["event"]: e for e in seen}
    assert [e["event"] for e in shown] == ["check", "heartbeat", "release", "done"]
    assert [e["event"] for e in seen if e["event"] in {"check", "release", "done"}] == [
        "check",
        "release",
        "done",
    ]
    for e in shown:
        keys_shown(e, real[e["event"]], e["event"])

    # Opened again once decided, as server-sent events: the check as it is, then done.
    headers = {**net.auth, "Accept": "text/event-stream"}
    async with net.session.get(_stream_url(net, check_id), headers=headers) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        text = (await asyncio.wait_for(resp.read(), 10)).decode()
    blocks = [b.split("\n") for b in text.strip().split("\n\n")]
    assert [b[0] for b in blocks] == ["event: check", "event: done"]
    check = orjson.loads(blocks[0][1].removeprefix("data: "))
    assert check["complete"] is True
    assert check["releases"][0]["state"] == "released"
    assert orjson.loads(blocks[1][1].removeprefix("data: ")) == {
        "complete": True,
        "ended": "complete",
    }


async def test_a_stream_ends_at_its_maximum_and_says_to_ask_again(short: Net) -> None:
    net = short
    doc = await net.check(HELD)
    validator = schema("ReleaseStreamEvent", _openapi())
    started = time.monotonic()
    async with net.session.get(_stream_url(net, doc["id"]), headers=net.auth) as resp:
        stream = Stream(resp, validator)
        assert (await stream.next())["event"] == "check"
        done = await stream.next(seconds=10)  # heartbeats every 15 s: none within 2 s
    assert (done["event"], done["complete"], done["ended"]) == ("done", False, "max_duration")
    assert 1.9 <= time.monotonic() - started < 8


def _sample(net: Net, node: str, name: str, labels: dict[str, str]) -> float:
    value = net.nodes[node].node.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_polls_of_a_waiting_approval_are_answers_not_refusals(net: Net) -> None:
    with capture_logs() as logs:
        doc = await net.check(HELD)
        approval = doc["checks"][0]["peers"][0]["approval"]["id"]
        # FR's releases job asks every second (its poll interval, DE's retry_after).
        for _ in range(100):
            if _sample(net, "DE", "ncb_release_polls_total", {"peer": "FR"}) >= 3:
                break
            await asyncio.sleep(0.1)
        assert _sample(net, "DE", "ncb_release_polls_total", {"peer": "FR"}) >= 3
    refused = {"listener": "peer", "code": "approval_pending"}
    assert _sample(net, "DE", "ncb_rejections_total", refused) == 0
    assert not [e for e in logs if e["event"] == "request_rejected"]

    async with peer_session() as session:
        fr = net.nodes["FR"].node
        client = PeerClient(session=session, signer=fr.signer, node="FR", clock=time.time)
        de = fr.live.current_trust().peers["DE"]

        async def ask(approval_id: str) -> dict[str, Any]:
            token, _ = sign_release_request(
                fr.signer, iss="FR", aud="DE", approval=approval_id, now=time.time()
            )
            with pytest.raises(PeerRejected) as refusal:
                await client.post(de, "/v1/release", token)
            problem: dict[str, Any] = refusal.value.extra["peer_problem"]
            return problem

        # Twice at once: the second is too soon, and that is a refusal.
        answers = [await ask(approval), await ask(approval)]
        assert answers[-1]["code"] == "release_polled_too_soon"
        assert answers[-1]["status"] == 429
        assert 0 < answers[-1]["retry_after"] <= 1
        too_soon = {"listener": "peer", "code": "release_polled_too_soon"}
        assert _sample(net, "DE", "ncb_rejections_total", too_soon) >= 1
        # An id that is not FR's stays refused and counted as before.
        unknown = await ask("01NOSUCHAPPROVAL000000000")
        assert (unknown["status"], unknown["code"]) == (404, "unknown_approval")
        gone = {"listener": "peer", "code": "unknown_approval"}
        assert _sample(net, "DE", "ncb_rejections_total", gone) == 1
    assert _sample(net, "DE", "ncb_rejections_total", refused) == 0

    # FR, told to wait, waits and still gets the release once approved.
    await net.approvals.approve(approval, operator=OPERATOR, reason="match confirmed")
    (release,) = (await net.until_complete(doc["id"]))["releases"]
    assert release["state"] == "released"


async def test_approvals_awaited_lists_what_this_node_waits_for(net: Net) -> None:
    doc = await net.check(HELD)
    approval = doc["checks"][0]["peers"][0]["approval"]
    listed = await asyncio.to_thread(cli, "approvals", "awaited", "--json", config=net.config("FR"))
    (row,) = orjson.loads(listed.stdout)
    assert row["approval"] == approval["id"]
    assert (row["peer"], row["state"], row["agency"], row["check"], row["checks"]) == (
        "DE",
        "pending",
        "border-police",
        doc["id"],
        ["doc"],
    )
    assert row["expires_at"].startswith(
        time.strftime("%Y-%m-%dT%H:%M", time.gmtime(approval["expires"]))
    )
    assert row["since"] <= row["expires_at"]
    assert (row["released_at"], row["release_enquiry"]) == (None, None)
    assert "Jean Exemple" not in listed.stdout
    table = await asyncio.to_thread(cli, "approvals", "awaited", config=net.config("FR"))
    assert approval["id"] in table.stdout
    assert "border-police" in table.stdout
    assert "'" not in table.stdout  # no Python reprs
    assert "None" not in table.stdout
    # DE waits for nothing from its peers.
    nothing = await asyncio.to_thread(cli, "approvals", "awaited", config=net.config("DE"))
    assert "no releases awaited from peers (pending)" in nothing.stdout

    # The agency is disabled before the release comes: it is kept, and the NCB is told.
    fr = net.nodes["FR"].node.settings
    agencies = fr.state_path(fr.federation.agencies_file)
    set_agency_enabled(agencies, "border-police", False, now=time.time())
    with capture_logs() as logs:
        await net.approvals.approve(approval["id"], operator=OPERATOR, reason="confirmed")
        # FR's releases job asks every second.
        for _ in range(150):
            if net.approvals_awaited("FR", "released"):
                break
            await asyncio.sleep(0.1)
    got = await asyncio.to_thread(
        cli, "approvals", "awaited", "--state", "released", "--json", config=net.config("FR")
    )
    (released,) = orjson.loads(got.stdout)
    assert released["state"] == "released"
    assert released["next_poll_at"] is None
    assert released["release_enquiry"] is not None
    (warned,) = [e for e in logs if e["event"] == "release_for_inactive_agency"]
    assert (warned["agency"], warned["request"]) == ("border-police", doc["id"])
    pending = await asyncio.to_thread(
        cli, "approvals", "awaited", "--json", config=net.config("FR")
    )
    assert orjson.loads(pending.stdout) == []
    # Enabled again, the agency reads its release.
    set_agency_enabled(agencies, "border-police", True, now=time.time())
    status, check = await net.released(doc["id"])
    assert status == 200
    assert check["releases"][0]["state"] == "released"
