"""Releases that wait for a person, across two real nodes: pending, approved, denied, expired,
a restart while waiting, an older peer's view, and another peer's approval refused."""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import jwt
import orjson
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from support.approvals import HELD, MISSING, OPERATOR, REF, Net, configure, two_nodes
from support.databases import DatabaseUrl
from support.openapi import schema
from support.processes import audit_entries, cli

from connector.approvals.service import Approvals, decision_jti
from connector.demo import DemoNode, network
from connector.errors import ApprovalDecided, PeerRejected
from connector.node.node import Node
from connector.node.service import Service
from connector.notify.render import notice_text
from connector.outbound.request import Request
from connector.peers.client import PeerClient, peer_session
from connector.peers.trust import TrustStore, save_trust_store
from connector.protocol import Check, digest, sign_release_request
from connector.settings.config import load_settings
from connector.trail.entry import TRAIL_FILE
from connector.vocabulary import AgencyKind, Category, Purpose

net = pytest.fixture(two_nodes("1h"))
quick = pytest.fixture(two_nodes("2s"))


async def test_a_hit_waits_for_an_operator_then_reaches_the_agency(net: Net) -> None:
    doc = await net.check(HELD)
    (peer,) = doc["checks"][0]["peers"]
    # At once: a signed answer that says hit and gives the ref, nothing of the record.
    assert (peer["status"], peer["level"]) == ("hit", "hit")
    (hit,) = peer["hits"]
    assert (hit["ref"], hit["score"], hit["record"]) == (REF, 1.0, {})
    approval = peer["approval"]
    assert (approval["status"], approval["level"]) == ("pending", "full")
    assert approval["expires"] == pytest.approx(time.time() + 3600, abs=5)
    openapi = yaml.safe_load(
        resources.files("connector").joinpath("data/local-api.openapi.yaml").read_text()
    )
    schema("ChecksResponse", openapi).validate(doc)
    status, pending = await net.released(doc["id"])
    assert status == 200
    schema("CheckReleases", openapi).validate(pending)
    assert not pending["complete"]
    assert [r["state"] for r in pending["releases"]] == ["pending"]

    # DE's approver sees what was asked, by whom, which record, which rule; its duty desk
    # was told one waits, and is reminded before the deadline.
    (waiting,) = net.approvals.list()
    assert waiting.id == approval["id"]
    assert (waiting.peer, waiting.sub, waiting.purpose) == (
        "FR",
        "border-police/4711",
        "border_control",
    )
    assert waiting.rules == ("documents once approved",)
    (held,) = waiting.held
    assert held.criteria == HELD
    assert held.hits[0]["record"]["holder_name"] == "Jean Exemple"
    assert "remarks" not in held.hits[0]["record"]
    shown = await asyncio.to_thread(cli, "approvals", "show", waiting.id, config=net.config("DE"))
    assert "Jean Exemple" in shown.stdout
    # Held as they leave (wire v1 names), shown by the names every other surface uses.
    assert held.shown_criteria == {"document_number": "DE1234567", "document_country": "DE"}
    assert {"number", "country"}.isdisjoint(held.shown_hits[0]["record"])
    assert "document_number" in held.shown_hits[0]["record"]
    assert "document_number" in shown.stdout
    assert "documents once approved" in shown.stdout
    later = Approvals(
        node="DE",
        enquiry_log=net.approvals.log,
        trail=net.nodes["DE"].node.settings.state_path(TRAIL_FILE),
        clock=lambda: time.time() + 2800,  # past three quarters of the hour
    )
    assert later.remind_due() == [waiting.id]
    assert later.remind_due() == []  # once
    notices = {n.notice.id: n.notice for n in net.outbox("DE") if n.notice.kind == "approval"}
    assert set(notices) == {f"{waiting.id}.w.duty-desk", f"{waiting.id}.r.duty-desk"}
    assert notices[f"{waiting.id}.w.duty-desk"].body["refs"] == [REF]
    subject, text = notice_text(notices[f"{waiting.id}.r.duty-desk"])
    assert "expires soon" in subject
    assert REF in text
    assert f"approvals show {waiting.id}" in text
    assert "Jean Exemple" not in text  # the record's fields stay on the node

    # Approved from the command line: the OS user is the operator.
    decided = await asyncio.to_thread(
        cli,
        "approvals",
        "approve",
        waiting.id,
        "--reason",
        "the holder's name matches the traveller",
        "--json",
        config=net.config("DE"),
    )
    verdict = orjson.loads(decided.stdout)
    assert verdict["state"] == "approved"
    assert verdict["decision"]["operator"]["kind"] == "os"
    again = await asyncio.to_thread(
        cli, "approvals", "deny", waiting.id, "--reason", "x", config=net.config("DE"), check=False
    )
    assert again.returncode == 1
    assert "already approved" in again.stderr

    done = await net.until_complete(doc["id"])
    schema("CheckReleases", openapi).validate(done)
    (release,) = done["releases"]
    assert release["state"] == "released"
    (result,) = release["results"]
    assert (result["status"], result["level"]) == ("hit", "full")
    assert result["hits"][0]["record"]["holder_name"] == "Jean Exemple"
    assert "remarks" not in result["hits"][0]["record"]
    # The agency was told where to read it, not what it says.
    (told,) = [n.notice for n in net.outbox("FR") if n.notice.kind == "release"]
    assert (told.channel, told.body["check"], told.body["state"]) == (
        "duty-desk",
        doc["id"],
        "released",
    )
    assert "Jean Exemple" not in orjson.dumps(told.body).decode()
    assert f"/local/v1/checks/{doc['id']}" in notice_text(told)[1]

    # Logged on both sides: DE's decision and the release it answered; FR's fetch of it.
    de = net.rows("DE")
    (decision,) = [e for e in de if e.jti == decision_jti(waiting.id)]
    assert decision.results[0]["reason"] == "the holder's name matches the traveller"
    assert decision.results[0]["verdict"] == "approved"
    (asked,) = [e for e in de if e.jti == waiting.query_jti]  # the query, answered pending
    assert asked.results[0]["approval"] == waiting.id
    # The release, answered once: FR asks no more once it has it.
    (release_row,) = [
        e
        for e in de
        if e.iss == "FR" and e.jti != waiting.query_jti and e.results[0]["approval"] == waiting.id
    ]
    assert release_row.results[0]["level"] == "full"
    fr = net.rows("FR")
    (fetched,) = [e for e in fr if e.results and e.results[0].get("approval") == waiting.id]
    assert fetched.direction == "out"
    assert fetched.hit_refs == (REF,)
    # And in DE's admin audit trail.
    (entry,) = [e for e in audit_entries(net.config("DE")) if e["action"] == "approval.approved"]
    assert entry["target"] == waiting.id
    assert entry["details"]["reason"] == "the holder's name matches the traveller"
    assert entry["details"]["refs"] == [REF]
    for node in ("DE", "FR"):  # decisions and releases are links of the chain like any row
        await asyncio.to_thread(cli, "enquiries", "verify", config=net.config(node))


async def test_a_denied_release_says_so_and_reveals_nothing(net: Net) -> None:
    doc = await net.check(HELD)
    approval = doc["checks"][0]["peers"][0]["approval"]["id"]
    decided = await net.approvals.deny(approval, operator=OPERATOR, reason="not our traveller")
    assert decided.state == "denied"
    # What was held is dropped with the refusal: the ref stays, the record's fields do not.
    stored = net.approvals.get(approval)
    assert [h["ref"] for h in stored.held[0].hits] == [REF]
    assert stored.held[0].hits[0]["record"] == {}
    assert "Jean Exemple" not in orjson.dumps([dict(r) for r in stored.results]).decode()
    with pytest.raises(ApprovalDecided):
        await net.approvals.approve(approval, operator=OPERATOR, reason="changed my mind")
    (release,) = (await net.until_complete(doc["id"]))["releases"]
    assert release["state"] == "denied"
    (result,) = release["results"]
    assert (result["status"], result["level"], result["hits"]) == ("denied", "none", [])
    assert result["reason"] == "approval_denied"
    (entry,) = [e for e in audit_entries(net.config("DE")) if e["action"] == "approval.denied"]
    assert entry["actor"]["kind"] == "console"
    assert entry["actor"]["name"] == "alice"
    listed = await asyncio.to_thread(
        cli, "approvals", "list", "--state", "denied", "--json", config=net.config("DE")
    )
    (shown,) = orjson.loads(listed.stdout)
    # The shape operations.md §17 documents.
    assert shown.keys() == {
        "id",
        "state",
        "peer",
        "enquiry",
        "asked_by",
        "rules",
        "policy_digest",
        "held",
        "created_at",
        "expires_at",
        "decision",
    }
    assert shown["asked_by"].keys() == {"node", "sub", "agency_kind", "purpose", "case"}
    assert shown["held"][0].keys() == {"check", "category", "criteria", "rule", "level", "hits"}
    assert shown["held"][0]["criteria"].keys() == {"document_number", "document_country"}
    assert shown["decision"].keys() == {"verdict", "at", "operator", "reason", "enquiry"}
    assert shown["decision"]["reason"] == "not our traveller"
    assert shown["decision"]["operator"] == {"kind": "console", "name": "alice"}


async def test_a_hit_nobody_decides_expires_denied(quick: Net) -> None:
    net = quick
    doc = await net.check(HELD)
    approval = doc["checks"][0]["peers"][0]["approval"]
    assert approval["expires"] - time.time() <= 2
    (release,) = (await net.until_complete(doc["id"]))["releases"]
    assert release["state"] == "expired"
    (result,) = release["results"]
    assert (result["status"], result["reason"]) == ("denied", "expired")
    assert net.approvals.get(approval["id"]).state == "expired"
    assert net.approvals.list() == []
    (decision,) = [e for e in net.rows("DE") if e.jti == decision_jti(approval["id"])]
    assert decision.results[0]["operator"] is None
    assert decision.decision == "denied"


async def test_no_hit_is_answered_at_once(net: Net) -> None:
    doc = await net.check(MISSING)
    (peer,) = doc["checks"][0]["peers"]
    assert peer["status"] == "no_hit"
    assert "approval" not in peer
    assert net.approvals.list() == []
    status, _ = await net.released(doc["id"])
    assert status == 404


async def _restart(net: Net, node_id: str) -> None:
    """Stop a node and start it again on the same directory (its ports change: the peers
    are told its new URL, as their admin would re-point it)."""
    await net.nodes[node_id].service.stop()
    settings = load_settings(net.config(node_id))
    node = Node.from_settings(settings)
    node.load_live()
    service = Service(
        node, shutdown_timeout=2.0, reread=functools.partial(load_settings, net.config(node_id))
    )
    await service.start()
    net.nodes[node_id] = DemoNode(id=node_id, node=node, service=service)
    url = f"https://127.0.0.1:{service.peer_port}"
    for other in net.nodes.values():
        if other.id == node_id:
            continue
        trust = other.node.live.current_trust()
        peers = [p if p.id != node_id else replace(p, url=url) for p in trust.peers.values()]
        save_trust_store(other.node.live.peers_file, TrustStore.of(peers))
        other.node.live.reload()


async def test_a_restart_while_approvals_wait_loses_nothing(net: Net) -> None:
    doc = await net.check(HELD)
    approval = doc["checks"][0]["peers"][0]["approval"]["id"]
    await _restart(net, "DE")
    await _restart(net, "FR")
    assert [a.id for a in net.approvals.list()] == [approval]
    await net.approvals.approve(approval, operator=OPERATOR, reason="confirmed after restart")
    (release,) = (await net.until_complete(doc["id"]))["releases"]
    assert release["state"] == "released"
    assert release["results"][0]["hits"][0]["record"]["holder_name"] == "Jean Exemple"


# What an implementation of protocol v1 before §15 checks of an answer (§7, §8): closed
# status and level lists, the members it needs; anything else it ignores (§11).
V1_ANSWER = {
    "type": "object",
    "required": ["iss", "aud", "iat", "jti", "in_reply_to", "query_digest", "enquiry", "results"],
    "properties": {
        "iat": {"type": "integer"},
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["check", "status", "level", "hits"],
                "properties": {
                    "status": {"enum": ["hit", "no_hit", "denied", "error"]},
                    "level": {"enum": ["none", "hit", "summary", "full"]},
                    "hits": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["ref", "score", "record"],
                            "properties": {"record": {"type": "object"}},
                        },
                    },
                },
            },
        },
    },
}


def _public(node: DemoNode) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(node.node.signer.public.raw)


def _verified(token: bytes, node: DemoNode, *, me: str) -> dict[str, Any]:
    """The token as PyJWT verifies it with the key `me` pins for `node`."""
    assert jwt.get_unverified_header(token)["typ"] == "ncb-answer+jwt"
    claims: dict[str, Any] = jwt.decode(
        token, _public(node), algorithms=["EdDSA"], audience=me, issuer=node.id
    )
    return claims


async def test_an_older_peer_verifies_the_pending_answer_and_the_release(net: Net) -> None:
    request = Request(
        agency="ncb",
        agency_kind=AgencyKind.NCB,
        sub="ncb/1",
        purpose=Purpose.CRIMINAL_INVESTIGATION,
        case=None,
        checks=(Check(id="doc", category=Category.TRAVEL_DOCUMENTS, criteria=HELD),),
    )
    async with net.nodes["FR"].node.desk() as desk:
        ex = await desk.ask(request, "DE")
    pending = _verified(ex.answer_token, net.nodes["DE"], me="FR")
    jsonschema.validate(pending, V1_ANSWER)  # a valid v1 answer: a hit at level hit
    (result,) = pending["results"]
    assert (result["status"], result["level"]) == ("hit", "hit")
    assert result["hits"][0]["record"] == {}
    approval = result["approval"]["id"]

    async with peer_session() as session:
        clients = {
            n: PeerClient(
                session=session,
                signer=net.nodes[n].node.signer,
                node=n,
                clock=time.time,
            )
            for n in ("FR", "GB")
        }

        async def ask(node: str, approval_id: str) -> Any:
            de = net.nodes[node].node.live.current_trust().peers["DE"]
            token, _ = sign_release_request(
                clients[node].signer, iss=node, aud="DE", approval=approval_id, now=time.time()
            )
            try:
                return await clients[node].post(de, "/v1/release", token)
            except PeerRejected as exc:  # a problem document, as the peer sent it
                return exc.extra["peer_problem"]

        waiting = await ask("FR", approval)
        assert (waiting["status"], waiting["code"]) == (409, "approval_pending")
        # GB names FR's approval: refused exactly as an id that does not exist.
        theirs, none = await ask("GB", approval), await ask("GB", "01NOSUCHAPPROVAL000000000")
        assert theirs == none
        assert (theirs["status"], theirs["code"]) == (404, "unknown_approval")
        assert "FR" not in orjson.dumps(theirs).decode()

        await net.approvals.approve(approval, operator=OPERATOR, reason="match confirmed")
        token = await ask("FR", approval)
    released = _verified(token, net.nodes["DE"], me="FR")
    jsonschema.validate(released, V1_ANSWER)
    # Bound to the original query and to the approval.
    assert released["in_reply_to"] == ex.query.jti
    assert released["query_digest"] == digest(ex.query_token)
    assert released["approval"] == {"id": approval, "status": "approved"}
    (result,) = released["results"]
    assert (result["status"], result["level"]) == ("hit", "full")
    assert result["hits"][0]["record"]["holder_name"] == "Jean Exemple"


async def test_one_decision_and_its_release_on_either_database(
    tmp_path: Path, db_url: DatabaseUrl
) -> None:
    """The approval's row rewritten with the decision, the decision once, the release
    fetched once: on SQLite and on PostgreSQL."""

    def configure_with(node_id: str, directory: Path) -> None:
        configure("1h")(node_id, directory)
        path = directory / "connector.yaml"
        config = yaml.safe_load(path.read_text())
        config["databases"] = {
            "records": db_url(f"{node_id}_records"),
            "enquiries": db_url(f"{node_id}_enquiries"),
        }
        path.write_text(yaml.safe_dump(config))

    async with (
        network(tmp_path, ["FR", "DE"], configure_with) as nodes,
        aiohttp.ClientSession() as session,
    ):
        net = Net(tmp_path, nodes, session)
        doc = await net.check(HELD)
        approval = doc["checks"][0]["peers"][0]["approval"]["id"]
        first, second = await asyncio.gather(
            net.approvals.approve(approval, operator=OPERATOR, reason="match confirmed"),
            net.approvals.deny(approval, operator=OPERATOR, reason="a namesake"),
            return_exceptions=True,
        )
        # Both read it pending; only one decision commits, the other is told so.
        decided = [r for r in (first, second) if not isinstance(r, BaseException)]
        refused = [r for r in (first, second) if isinstance(r, BaseException)]
        assert len(decided) == 1
        assert [type(r) for r in refused] == [ApprovalDecided]
        state = net.approvals.get(approval).state
        assert state == decided[0].state
        (release,) = (await net.until_complete(doc["id"]))["releases"]
        assert release["state"] == {"approved": "released", "denied": "denied"}[state]
        decisions = [e for e in net.rows("DE") if e.jti == decision_jti(approval)]
        assert len(decisions) == 1
