"""The local listener against the hostile: bodies over the limit, guessed tokens, foreign Host
names, and what /readyz and the headers tell someone without a token."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from connector.demo import DemoNode, network
from connector.outbound.agencies import add_agency
from connector.peers.trust import fingerprint_bytes
from connector.records.fingerprints.extraction import MAX_IMAGE_CHARS
from connector.server.local_checks import MAX_BODY
from connector.vocabulary import AgencyKind

CHECK = {"id": "d", "category": "travel_documents", "criteria": {"number": "X1", "country": "DE"}}
BODY = {"purpose": "border_control", "sub": "1", "checks": [CHECK], "peers": ["DE"]}


def _configure(node_id: str, directory: Path) -> None:
    with (directory / "connector.yaml").open("a") as f:
        f.write("federation:\n  local_hosts: [ncb.internal.example]\n  auth_failures: 5\n")


class Local:
    def __init__(self, node: DemoNode, peer: DemoNode, session: aiohttp.ClientSession) -> None:
        self.node, self.peer, self.session = node, peer, session
        self.port = node.service.local_port
        self.url = f"http://127.0.0.1:{self.port}"
        s = node.node.settings
        self.token = add_agency(
            s.state_path(s.federation.agencies_file), "ncb-desk", AgencyKind.NCB, now=time.time()
        )[1]

    async def get(self, path: str, **headers: str) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.session.get(self.url + path, headers=headers) as resp:
            raw = await resp.read()
            return resp.status, orjson.loads(raw) if raw else None, resp

    async def post(self, data: Any, **headers: str) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers.setdefault("Authorization", f"Bearer {self.token}")
        headers.setdefault("Content-Type", "application/json")
        async with self.session.post(
            self.url + "/local/v1/checks", data=data, headers=headers
        ) as resp:
            raw = await resp.read()
            return resp.status, orjson.loads(raw) if raw else None, resp


@pytest.fixture
async def local(tmp_path: Path, session: aiohttp.ClientSession) -> AsyncIterator[Local]:
    async with network(tmp_path, ["FR", "DE"], _configure) as net:
        yield Local(net["FR"], net["DE"], session)


def _problem_schema(openapi: dict[str, Any]) -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(openapi, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": "urn:openapi#/components/schemas/Problem"}, registry=registry
    )


async def test_a_body_over_the_limit_is_413_chunked_or_not(local: Local) -> None:
    """The limit: 64 KiB of checks and room for one fingerprint image."""
    _, openapi, _ = await local.get("/local/v1/openapi.json")
    assert MAX_BODY == 64 * 1024 + MAX_IMAGE_CHARS
    big = orjson.dumps({**BODY, "case": "x" * MAX_BODY})

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 16_384):
            yield big[i : i + 16_384]

    for data in (big, chunks()):
        status, problem, _ = await local.post(data)
        assert (status, problem["code"]) == (413, "payload_too_large")
        _problem_schema(openapi).validate(problem)
    assert "413" in openapi["paths"]["/local/v1/checks"]["post"]["responses"]
    # Just under the limit is read and judged on its content.
    fits = orjson.dumps({**BODY, "case": "x" * 60_000})
    status, problem, _ = await local.post(fits)
    assert (status, problem["code"]) == (422, "invalid_request")


async def test_failed_tokens_from_one_address_are_refused_for_a_while(local: Local) -> None:
    _, openapi, _ = await local.get("/local/v1/openapi.json")
    wrong = local.token[:-4] + "AAAA"
    body = orjson.dumps(BODY)
    statuses = []
    for _ in range(8):
        status, problem, resp = await local.post(body, Authorization=f"Bearer {wrong}")
        statuses.append(status)
    assert statuses == [401] * 5 + [429] * 3
    assert problem["code"] == "too_many_attempts"
    assert 1 <= int(resp.headers["Retry-After"]) <= 61  # the window, plus a bucket (1/64)
    _problem_schema(openapi).validate(problem)
    assert "429" in openapi["paths"]["/local/v1/checks"]["post"]["responses"]
    # While refused, the address gets nothing checked, a valid token included; /readyz's
    # details are behind the same gate, its status is not.
    assert (await local.post(body))[0] == 429
    assert (await local.get("/readyz", Authorization=f"Bearer {local.token}"))[0] == 429
    assert (await local.get("/readyz"))[:2] == (200, {"status": "ready"})


async def test_readyz_tells_a_probe_its_status_and_an_agency_the_details(local: Local) -> None:
    status, body, _ = await local.get("/readyz")
    assert (status, body) == (200, {"status": "ready"})
    status, body, _ = await local.get("/readyz", Authorization=f"Bearer {local.token}")
    assert status == 200
    assert body["status"] == "ready"
    assert body["peers"] == 1
    assert body["policy_digest"] == local.node.node.live.policy.digest
    assert body["problems"] == {}
    status, problem, _ = await local.get("/readyz", Authorization="Bearer ncb.x.nope")
    assert (status, problem["code"]) == (401, "unauthorized")
    # A broken policy file: the probe learns "degraded", not the file's path or the error.
    policies = local.node.node.settings.path(local.node.node.settings.policy_dir)
    (policies / "99-broken.yaml").write_text("inbound: [oops\n")
    local.node.node.live.reload()
    status, body, _ = await local.get("/readyz")
    assert (status, body) == (200, {"status": "degraded"})
    status, body, _ = await local.get("/readyz", Authorization=f"Bearer {local.token}")
    assert body["status"] == "degraded"
    assert "policy" in body["problems"]


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:{port}",
        "localhost:{port}",
        "LOCALHOST.",
        "[::1]:{port}",
        "10.1.2.3",
        "ncb.internal.example:{port}",
    ],
)
async def test_hosts_the_listener_answers(local: Local, host: str) -> None:
    status, body, _ = await local.get("/livez", Host=host.format(port=local.port))
    assert (status, body) == (200, {"status": "ok"})


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics", "/local/v1/openapi.json"])
async def test_a_foreign_host_name_is_refused(local: Local, path: str) -> None:
    # A page on attacker.example whose name now resolves to 127.0.0.1 (DNS rebinding).
    status, problem, _ = await local.get(path, Host=f"attacker.example:{local.port}")
    assert (status, problem["code"]) == (421, "misdirected_request")
    status, problem, _ = await local.post(orjson.dumps(BODY), Host="attacker.example")
    assert (status, problem["code"]) == (421, "misdirected_request")


async def test_no_server_header_on_either_listener(local: Local) -> None:
    for path in ("/livez", "/readyz", "/local/v1/openapi.json", "/nothing"):
        _, _, resp = await local.get(path)
        assert "Server" not in resp.headers, path
    _, _, resp = await local.post(b"{}", Authorization="Bearer x")
    assert resp.status == 401
    assert "Server" not in resp.headers
    peer = local.node
    pin = aiohttp.Fingerprint(fingerprint_bytes(peer.node.tls_fingerprint or ""))
    base = f"https://127.0.0.1:{peer.service.peer_port}"
    async with local.session.get(base + "/v1/identity", ssl=pin) as resp:
        assert resp.status == 200
        assert "Server" not in resp.headers
    async with local.session.post(base + "/v1/query", data=b"x", ssl=pin) as resp:
        assert resp.status == 415
        assert "Server" not in resp.headers
