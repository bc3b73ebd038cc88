"""`GET /metrics` on the local listener, scraped before and after real traffic: hits,
denials, a rationed rule, rejections, a fan-out with a dead peer, notices stuck for a dead
webhook. Every counter moves by exactly the traffic sent, and no label comes from what a
client sent."""

from __future__ import annotations

import math
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support.processes import free_port

from connector.crypto.jws import Signer, SigningKey
from connector.crypto.keyfiles import certificate_not_after
from connector.demo import DemoNode, network
from connector.node.local_app import HEALTH
from connector.outbound.agencies import add_agency
from connector.peers.trust import Peer, PinnedKey, save_trust_store
from connector.protocol import JOSE_MEDIA_TYPE, Check, make_query, sign_query
from connector.vocabulary import AgencyKind, Category, Purpose

DOCS = "documents for FR"
VEHICLES = "vehicles for FR, rationed"
DE_POLICY = f"""\
inbound:
  - name: {DOCS}
    from: [FR]
    categories: [travel_documents]
    answer: full
    notify: always
    channels: [duty]
  - name: {VEHICLES}
    from: [FR]
    categories: [vehicles]
    answer: hit
    rate: 1/hour
"""
FR_POLICY = """\
outbound:
  - name: border police, documents
    agency: border-police
    categories: [travel_documents]
    to: "*"
"""
VIN = "1M8GDM9AXKP042788"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def moved(before: Samples, after: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every series of `name` whose value changed, by its labels, and by how much."""
    out = {}
    for (n, labels), value in after.items():
        if n == name:
            delta = value - before.get((n, labels), 0.0)
            if delta:
                out[labels] = delta
    return out


def labels(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


def value(samples: Samples, name: str, **kw: str) -> float:
    return samples[(name, labels(**kw))]


@dataclass
class Net:
    nodes: dict[str, DemoNode]
    session: aiohttp.ClientSession
    dead_port: int

    def local(self, node: str) -> str:
        return f"http://127.0.0.1:{self.nodes[node].service.local_port}"

    async def scrape(self, node: str) -> tuple[str, Samples]:
        async with self.session.get(self.local(node) + "/metrics") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            text = await resp.text()
        return text, parse(text)

    async def post(self, token: bytes, media: str = JOSE_MEDIA_TYPE) -> tuple[int, Any]:
        port = self.nodes["DE"].service.peer_port
        async with self.session.post(
            f"https://127.0.0.1:{port}/v1/query",
            data=token,
            headers={"Content-Type": media},
            ssl=False,
        ) as resp:
            return resp.status, await resp.read()


def _configure(dead_port: int) -> Any:
    def configure(node_id: str, directory: Path) -> None:
        if node_id == "DE":
            (directory / "policies" / "10-demo.yaml").write_text(DE_POLICY)
            config = directory / "connector.yaml"
            config.write_text(
                config.read_text() + "notifications:\n  channels:\n    duty:\n      type: webhook\n"
                f"      url: http://127.0.0.1:{dead_port}/hook\n      insecure: true\n"
                "      timeout: 1\n"
            )
        else:
            (directory / "policies" / "10-demo.yaml").write_text(FR_POLICY)

    return configure


@pytest.fixture
async def net(tmp_path: Path, session: aiohttp.ClientSession) -> AsyncIterator[Net]:
    """FR and DE; FR also trusts GB, whose port has nothing listening."""
    dead = free_port()
    async with network(tmp_path, ["FR", "DE"], _configure(dead)) as nodes:
        fr = nodes["FR"].node
        gb = Peer(
            id="GB",
            url=f"http://127.0.0.1:{dead}",
            insecure=True,
            keys=(PinnedKey(key=SigningKey.generate().public),),
        )
        save_trust_store(fr.live.peers_file, fr.live.trust.with_peer(gb))
        fr.live.reload()
        for n in nodes.values():
            n.service.backlogs.outbox.interval = 0  # every scrape reads the outbox anew
        yield Net(nodes, session, dead)


def query(category: Category, criteria: Mapping[str, str]) -> Any:
    return make_query(
        iss="FR",
        aud="DE",
        sub="border/7",
        agency_kind=AgencyKind.BORDER,
        purpose=Purpose.BORDER_CONTROL,
        checks=(Check(id="1", category=category, criteria=criteria),),
    )


async def traffic(net: Net) -> None:
    """What the deltas below count: 3 hits, 2 misses, 2 checks no rule allows, 2 vehicle
    checks against a rule of 1/hour, 4 refused tokens, a wrong agency token, and a fan-out
    from FR to DE and the dead GB."""
    fr = net.nodes["FR"].node
    sign = fr.signer
    doc_hit = {"number": "DE1234567", "country": "DE"}
    first = b""
    for _ in range(3):
        token = sign_query(query(Category.TRAVEL_DOCUMENTS, doc_hit), sign)
        first = first or token
        assert (await net.post(token))[0] == 200
    for _ in range(2):
        token = sign_query(query(Category.TRAVEL_DOCUMENTS, {"number": "DE0000001"}), sign)
        assert (await net.post(token))[0] == 200
    for _ in range(2):
        token = sign_query(query(Category.WANTED_PERSONS, {"last_name": "Doe"}), sign)
        assert (await net.post(token))[0] == 200
    for _ in range(2):
        token = sign_query(query(Category.VEHICLES, {"vin": VIN}), sign)
        assert (await net.post(token))[0] == 200
    # Refused: a replay, a key nobody pinned (claiming to be a peer nobody trusts), a
    # signature that does not verify, a body of the wrong type.
    status, body = await net.post(first)
    assert (status, orjson.loads(body)["code"]) == (409, "replay")
    stranger = make_query(
        iss="ZZ-EVIL-1",
        aud="DE",
        sub="x/1",
        agency_kind=AgencyKind.NCB,
        purpose=Purpose.BORDER_CONTROL,
        checks=(Check(id="1", category=Category.TRAVEL_DOCUMENTS, criteria=doc_hit),),
    )
    status, body = await net.post(sign_query(stranger, Signer(SigningKey.generate())))
    assert (status, orjson.loads(body)["code"]) == (401, "unknown_key")
    fresh = sign_query(query(Category.TRAVEL_DOCUMENTS, doc_hit), sign)
    head, payload, sig = fresh.split(b".")
    forged = b".".join((head, payload, (b"A" if sig[:1] != b"A" else b"B") + sig[1:]))
    status, body = await net.post(forged)
    assert orjson.loads(body)["code"] == "bad_signature"
    status, body = await net.post(fresh, media="application/json")
    assert (status, orjson.loads(body)["code"]) == (415, "unsupported_media_type")

    # FR's border police ask every peer: DE answers, GB is down. GB has failed two health
    # checks first, so the fan-out's failure is its third in a row and opens its breaker.
    s = fr.settings
    agency_token = add_agency(
        s.state_path(s.federation.agencies_file), "border-police", AgencyKind.BORDER, now=0
    )[1]
    health = net.nodes["FR"].service.local_app[HEALTH]
    await health.run_once()
    await health.run_once()
    check = {
        "purpose": "border_control",
        "sub": "4711",
        "checks": [{"id": "doc", "category": "travel_documents", "criteria": doc_hit}],
        "deadline_ms": 3000,
    }
    url = net.local("FR") + "/local/v1/checks"
    async with net.session.post(url, json=check, headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401
    async with net.session.post(
        url, json=check, headers={"Authorization": f"Bearer {agency_token}"}
    ) as resp:
        assert resp.status == 200
        doc = await resp.json()
    by_peer = {p["peer"]: p["status"] for p in doc["checks"][0]["peers"]}
    assert by_peer == {"DE": "hit", "GB": "unreachable"}


async def test_counters_move_by_exactly_the_traffic_sent(net: Net) -> None:
    _, de0 = await net.scrape("DE")
    _, fr0 = await net.scrape("FR")
    await traffic(net)
    de_text, de = await net.scrape("DE")
    _, fr = await net.scrape("FR")

    checks = "ncb_inbound_checks_total"
    assert moved(de0, de, checks) == {
        labels(peer="FR", category="travel_documents", outcome="hit", rule=DOCS): 4,
        labels(peer="FR", category="travel_documents", outcome="no_hit", rule=DOCS): 2,
        labels(peer="FR", category="wanted_persons", outcome="denied", rule="(default deny)"): 2,
        labels(peer="FR", category="vehicles", outcome="no_hit", rule=VEHICLES): 1,
        labels(peer="FR", category="vehicles", outcome="denied", rule=VEHICLES): 1,
    }
    assert moved(de0, de, "ncb_inbound_rate_limited_total") == {labels(peer="FR", rule=VEHICLES): 1}
    assert moved(de0, de, "ncb_rejections_total") == {
        labels(listener="peer", code=code): 1
        for code in ("replay", "unknown_key", "bad_signature", "unsupported_media_type")
    }
    # Ten answers, each timed, each row committed; nothing failed.
    assert moved(de0, de, "ncb_inbound_answer_seconds_count") == {labels(): 10}
    assert moved(de0, de, "ncb_enquiry_log_commit_rows_sum") == {labels(): 10}
    assert value(de, "ncb_enquiry_log_commit_seconds_count") >= 1
    assert value(de, "ncb_enquiry_log_commit_failures_total") == 0

    # Six enquiries were decided by the rule that notifies; the webhook is down.
    assert value(de, "ncb_outbox_pending_notices", channel="duty") == 6
    assert value(de, "ncb_outbox_dead_notices", channel="duty") == 0
    assert 0 <= value(de, "ncb_outbox_oldest_pending_age_seconds", channel="duty") < 60
    assert value(de, "ncb_records", category="travel_documents") == 3
    assert value(de, "ncb_records", category="vehicles") == 0

    # FR: one check per peer, by agency, peer and status; one exchange each, timed.
    assert moved(fr0, fr, "ncb_outbound_checks_total") == {
        labels(agency="border-police", peer="DE", status="hit"): 1,
        labels(agency="border-police", peer="GB", status="unreachable"): 1,
    }
    assert moved(fr0, fr, "ncb_outbound_exchange_seconds_count") == {
        labels(peer="DE"): 1,
        labels(peer="GB"): 1,
    }
    assert moved(fr0, fr, "ncb_enquiry_log_commit_rows_sum") == {labels(): 2}
    assert moved(fr0, fr, "ncb_rejections_total") == {
        labels(listener="local", code="unauthorized"): 1
    }
    assert value(fr, "ncb_peer_up", peer="DE") == 1
    assert value(fr, "ncb_peer_up", peer="GB") == 0
    assert value(fr, "ncb_peer_breaker_state", peer="GB", state="open") == 1
    assert value(fr, "ncb_peer_breaker_state", peer="DE", state="closed") == 1
    assert value(fr, "ncb_peer_key_expiry_timestamp_seconds", peer="GB") == math.inf

    # The node itself: ready, the policy in force, its key and certificate.
    de_node = net.nodes["DE"].node
    assert value(de, "ncb_node_ready") == 1
    assert value(de, "ncb_node_maintenance") == 0
    assert value(de, "ncb_node_problem", what="policy") == 0
    assert value(de, "ncb_policy_info", digest=de_node.live.policy.digest) == 1
    assert value(de, "ncb_peers") == 1
    assert value(de, "ncb_signing_key_expiry_timestamp_seconds") == math.inf
    cert = de_node.settings.path(de_node.settings.tls.cert).read_bytes()
    not_after = value(de, "ncb_tls_certificate_expiry_timestamp_seconds")
    assert not_after == certificate_not_after(cert)
    assert not_after > time.time() + 300 * 86_400
    # What a stranger sent never became a label.
    assert "ZZ-EVIL" not in de_text


async def test_a_failed_reload_is_counted_and_shown(net: Net) -> None:
    de = net.nodes["DE"]
    _, before = await net.scrape("DE")
    (de.node.live.policy_dir / "10-demo.yaml").write_text("inbound: [{name: broken}]\n")
    config = de.node.settings.base_dir / "connector.yaml"
    config.write_text(config.read_text() + "no_such_setting: 1\n")
    de.service.reload()  # SIGHUP: connector.yaml, then the policy and peers
    _, after = await net.scrape("DE")
    assert moved(before, after, "ncb_reload_failures_total") == {
        labels(file="policy"): 1,
        labels(file="config"): 1,
    }
    assert value(after, "ncb_node_problem", what="policy") == 1
    assert value(after, "ncb_node_problem", what="config") == 1
    assert value(after, "ncb_node_problem", what="peers") == 0
    assert value(after, "ncb_node_ready") == 1  # degraded: the last good versions answer


async def test_metrics_answer_the_hosts_the_local_listener_answers(net: Net) -> None:
    url = net.local("DE") + "/metrics"
    async with net.session.get(url, headers={"Host": "evil.example"}) as resp:
        assert resp.status == 421
    async with net.session.get(url, headers={"Accept": "application/openmetrics-text"}) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/openmetrics-text"
        assert "Server" not in resp.headers
        assert (await resp.text()).rstrip().endswith("# EOF")


REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "packaging" / "monitoring"
NAME = re.compile(r"\b(?:ncb|process)_[a-z0-9_]+\b")
RULE_KEYS = {"alert", "expr", "for", "labels", "annotations"}


def _exprs_of_dashboard(doc: dict[str, Any]) -> list[str]:
    found = []
    ids = set()
    for panel in doc["panels"]:
        assert panel["id"] not in ids, panel["title"]
        ids.add(panel["id"])
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["title"]
        assert panel["type"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            found.append(target["expr"])
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            found.append(var["definition"])
    return found


def _exprs_of_rules(doc: dict[str, Any]) -> list[str]:
    """The rule file's structure as Prometheus reads it: groups of named rules, each alert
    with its expression, a duration, a severity and words for whoever is paged."""
    assert doc["groups"], "no groups"
    found, names = [], set()
    for group in doc["groups"]:
        assert group["name"]
        assert group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS, set(rule) - RULE_KEYS
            assert re.fullmatch(r"Ncb[A-Za-z]+", rule["alert"]), rule["alert"]
            assert rule["alert"] not in names, rule["alert"]
            names.add(rule["alert"])
            assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule
            assert rule["labels"]["severity"] in {"critical", "warning"}, rule
            assert rule["annotations"]["summary"]
            assert rule["annotations"]["description"]
            found.append(rule["expr"])
    return found


def _monitoring_files() -> tuple[dict[str, Any], dict[str, Any], str]:
    return (
        orjson.loads((MONITORING / "ncb-connector-dashboard.json").read_bytes()),
        yaml.safe_load((MONITORING / "ncb-connector-alerts.yml").read_text()),
        (REPO / "docs" / "operations.md").read_text(),
    )


async def test_dashboard_and_alerts_use_only_what_a_node_exports(net: Net) -> None:
    """Every metric named in the dashboard's panels and the alert rules' expressions is in a
    live node's /metrics after traffic; every ncb_ family is used by one of them and has its
    row in operations.md's table."""
    await traffic(net)
    await net.nodes["DE"].service.local_app[HEALTH].run_once()
    family_of: dict[str, str] = {}  # each sample's name: its family's
    for node in ("DE", "FR"):
        text, _ = await net.scrape(node)
        for family in text_string_to_metric_families(text):
            family_of |= {s.name: family.name for s in family.samples}
    dashboard, rules, operations = _monitoring_files()
    used: dict[str, str] = {}
    for what, exprs in (
        ("dashboard", _exprs_of_dashboard(dashboard)),
        ("alerts", _exprs_of_rules(rules)),
    ):
        for expr in exprs:
            used |= {name: what for name in NAME.findall(expr)}
    assert {name: what for name, what in used.items() if name not in family_of} == {}
    ours = {f for f in family_of.values() if f.startswith("ncb_")}
    assert ours - {family_of[name] for name in used} == set()
    documented = set(re.findall(r"`(ncb_[a-z0-9_]+)", operations))
    # The table names counters as exposed, with `_total`; the parser drops it.
    assert {f for f in ours if f not in documented and f + "_total" not in documented} == set()


def test_a_peer_key_expires_only_when_no_pinned_key_outlives_it() -> None:
    """Over a peer's rotation the retiring key has a not_after and its successor none: the
    peer's keys do not run out, and the alert on them stays quiet."""
    from datetime import UTC, datetime

    from connector.crypto.jws import SigningKey
    from connector.node.metrics import peer_keys_expiry
    from connector.peers.trust import Peer, PinnedKey

    soon = datetime(2026, 12, 14, tzinfo=UTC)
    later = datetime(2027, 1, 1, tzinfo=UTC)
    old, new = (PinnedKey(key=SigningKey.generate().public, not_after=soon),
                PinnedKey(key=SigningKey.generate().public))  # fmt: skip
    rotating = Peer(id="DE", url="https://127.0.0.1:9", keys=(old, new))
    assert peer_keys_expiry(rotating) == math.inf
    both = Peer(
        id="DE", url="https://127.0.0.1:9", keys=(old, PinnedKey(key=new.key, not_after=later))
    )
    assert peer_keys_expiry(both) == later.timestamp()
