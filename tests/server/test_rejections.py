"""Every way a query can be refused: its RFC 9457 status, its log entry, and no change anywhere."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
import structlog

from connector.crypto.jws import Signer, SigningKey, b64url
from connector.demo import DemoNode, _mrz_td3
from connector.peers.trust import fingerprint_bytes
from connector.protocol import TYP_ANSWER, TYP_QUERY, new_jti
from connector.vocabulary import Category

PROBLEM = "application/problem+json"


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "FR",
        "aud": "DE",
        "iat": now,
        "exp": now + 60,
        "jti": new_jti(),
        "sub": "border-police/4711",
        "agency_kind": "border",
        "purpose": "border_control",
        "checks": [
            {
                "id": "1",
                "category": "travel_documents",
                "criteria": {"number": "DE1234567", "country": "DE"},
            }
        ],
    }
    base.update(over)
    return base


def sign(signer: Signer, payload: dict[str, Any] | bytes, typ: str = TYP_QUERY) -> bytes:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return signer.sign_compact(body, typ=typ)


@functools.cache
def pinned(fp: str) -> aiohttp.Fingerprint:
    """One Fingerprint per certificate: the session pools connections by it, and a new one
    per request would open a new connection each time (a node caps those per address)."""
    return aiohttp.Fingerprint(fingerprint_bytes(fp))


async def post(
    session: aiohttp.ClientSession,
    node: DemoNode,
    body: bytes,
    content_type: str = "application/jose",
) -> tuple[int, str, bytes]:
    async with session.post(
        f"https://127.0.0.1:{node.service.peer_port}/v1/query",
        data=body,
        headers={"Content-Type": content_type},
        ssl=pinned(node.node.tls_fingerprint),
    ) as resp:
        return resp.status, resp.content_type, await resp.read()


def _flip_last(part: bytes) -> bytes:
    return part[:-2] + (b"A" if part[-2:-1] != b"A" else b"B") + part[-1:]


def tampered_payload(fr: Signer, _gb: Signer) -> bytes:
    head, _, sig = sign(fr, claims()).split(b".")
    return head + b"." + b64url(orjson.dumps(claims(sub="someone/else"))).encode() + b"." + sig


def tampered_signature(fr: Signer, _gb: Signer) -> bytes:
    head, payload, sig = sign(fr, claims()).split(b".")
    return head + b"." + payload + b"." + _flip_last(sig)


def unknown_kid(_fr: Signer, _gb: Signer) -> bytes:
    return sign(Signer(SigningKey.generate()), claims())


def key_of_another_peer(_fr: Signer, gb: Signer) -> bytes:
    return sign(gb, claims(iss="FR"))


def wrong_aud(fr: Signer, _gb: Signer) -> bytes:
    return sign(fr, claims(aud="GB"))


def answer_typ(fr: Signer, _gb: Signer) -> bytes:
    return sign(fr, claims(), typ=TYP_ANSWER)


def expired(fr: Signer, _gb: Signer) -> bytes:
    now = int(time.time())
    return sign(fr, claims(iat=now - 200, exp=now - 100))


def future(fr: Signer, _gb: Signer) -> bytes:
    now = int(time.time())
    return sign(fr, claims(iat=now + 100, exp=now + 160))


def too_long_lived(fr: Signer, _gb: Signer) -> bytes:
    now = int(time.time())
    return sign(fr, claims(iat=now, exp=now + 3600))


def not_jose(_fr: Signer, _gb: Signer) -> bytes:
    return b"SELECT * FROM travel_documents"


def bad_json_inside(fr: Signer, _gb: Signer) -> bytes:
    return sign(fr, b'{"iss": "FR", "aud": ')


def unknown_category(fr: Signer, _gb: Signer) -> bytes:
    return sign(
        fr, claims(checks=[{"id": "1", "category": "spaceships", "criteria": {"number": "X"}}])
    )


def sqlish_number(fr: Signer, _gb: Signer) -> bytes:
    return sign(
        fr,
        claims(
            checks=[
                {"id": "1", "category": "travel_documents", "criteria": {"number": "1' OR '1'='1"}}
            ]
        ),
    )


def sqlish_country(fr: Signer, _gb: Signer) -> bytes:
    country = "DE'; DROP TABLE travel_documents;--"
    return sign(
        fr,
        claims(
            checks=[
                {
                    "id": "1",
                    "category": "travel_documents",
                    "criteria": {"number": "DE1234567", "country": country},
                }
            ]
        ),
    )


def very_long_string(fr: Signer, _gb: Signer) -> bytes:
    return sign(
        fr,
        claims(
            checks=[
                {"id": "1", "category": "travel_documents", "criteria": {"number": "9" * 20_000}}
            ]
        ),
    )


def bad_mrz_digit(fr: Signer, _gb: Signer) -> bytes:
    mrz = _mrz_td3("DE1234567", "D<<", "EXEMPLE", "JEAN")
    line1, line2 = mrz.split("\n")
    broken = line2[:9] + str((int(line2[9]) + 1) % 10) + line2[10:]
    return sign(
        fr,
        claims(
            checks=[
                {
                    "id": "1",
                    "category": "travel_documents",
                    "criteria": {"mrz": line1 + "\n" + broken},
                }
            ]
        ),
    )


def missing_claim(fr: Signer, _gb: Signer) -> bytes:
    c = claims()
    del c["purpose"]
    return sign(fr, c)


def short_jti(fr: Signer, _gb: Signer) -> bytes:
    return sign(fr, claims(jti="1"))


def unknown_claim(fr: Signer, _gb: Signer) -> bytes:
    return sign(fr, claims(admin=True))


CASES: list[tuple[Callable[[Signer, Signer], bytes], int, str]] = [
    (tampered_payload, 401, "bad_signature"),
    (tampered_signature, 401, "bad_signature"),
    (unknown_kid, 401, "unknown_key"),
    (key_of_another_peer, 401, "unknown_key"),
    (wrong_aud, 403, "wrong_audience"),
    (answer_typ, 400, "wrong_type"),
    (expired, 401, "stale_token"),
    (future, 401, "stale_token"),
    (too_long_lived, 401, "stale_token"),
    (not_jose, 400, "malformed_token"),
    (bad_json_inside, 400, "malformed_token"),
    (unknown_category, 422, "invalid_claims"),
    (sqlish_number, 422, "invalid_criteria"),
    (sqlish_country, 422, "invalid_criteria"),
    (very_long_string, 422, "invalid_claims"),
    (bad_mrz_digit, 422, "invalid_criteria"),
    (missing_claim, 422, "invalid_claims"),
    (short_jti, 422, "invalid_claims"),
    (unknown_claim, 422, "invalid_claims"),
]


def _counts(net: dict[str, DemoNode]) -> tuple[int, int]:
    de = net["DE"].node
    store, log = de.open_records(), de.open_enquiry_log()
    try:
        return store.count(Category.TRAVEL_DOCUMENTS), log.count()
    finally:
        store.close()
        log.close()


@pytest.mark.parametrize(("make", "status", "code"), CASES, ids=[c[0].__name__ for c in CASES])
async def test_rejected(
    trio: dict[str, DemoNode],
    session: aiohttp.ClientSession,
    make: Callable[[Signer, Signer], bytes],
    status: int,
    code: str,
) -> None:
    before = _counts(trio)
    token = make(trio["FR"].node.signer, trio["GB"].node.signer)
    with structlog.testing.capture_logs() as logs:
        got, ctype, body = await post(session, trio["DE"], token)
    assert (got, ctype) == (status, PROBLEM), body
    problem = orjson.loads(body)
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"].endswith("/" + code)
    assert problem["title"]
    assert problem["detail"]
    assert any(e["event"] == "request_rejected" and e["code"] == code for e in logs)
    assert _counts(trio) == before


async def test_mrz_error_names_the_field(
    trio: dict[str, DemoNode], session: aiohttp.ClientSession
) -> None:
    _, _, body = await post(
        session, trio["DE"], bad_mrz_digit(trio["FR"].node.signer, trio["GB"].node.signer)
    )
    problem = orjson.loads(body)
    assert problem["field"] == "checks.0.criteria.mrz.document_number_check_digit"


async def test_replayed_jti_refused(
    pair: dict[str, DemoNode], session: aiohttp.ClientSession
) -> None:
    token = sign(pair["FR"].node.signer, claims())
    first = await post(session, pair["DE"], token)
    assert first[0] == 200
    before = _counts(pair)
    status, ctype, body = await post(session, pair["DE"], token)
    assert (status, ctype) == (409, PROBLEM)
    assert orjson.loads(body)["code"] == "replay"
    assert _counts(pair) == before


async def test_body_over_64_kib(pair: dict[str, DemoNode], session: aiohttp.ClientSession) -> None:
    before = _counts(pair)
    status, ctype, body = await post(session, pair["DE"], b"a" * (64 * 1024 + 1))
    assert (status, ctype) == (413, PROBLEM)
    assert orjson.loads(body)["code"] == "payload_too_large"
    assert _counts(pair) == before


async def test_wrong_media_type(pair: dict[str, DemoNode], session: aiohttp.ClientSession) -> None:
    token = sign(pair["FR"].node.signer, claims())
    status, ctype, _ = await post(session, pair["DE"], token, content_type="application/json")
    assert (status, ctype) == (415, PROBLEM)


async def test_unknown_path_is_a_problem_too(
    pair: dict[str, DemoNode], session: aiohttp.ClientSession
) -> None:
    de = pair["DE"]
    async with session.get(
        f"https://127.0.0.1:{de.service.peer_port}/v2/query",
        ssl=aiohttp.Fingerprint(fingerprint_bytes(de.node.tls_fingerprint)),
    ) as resp:
        assert resp.status == 404
        assert resp.content_type == PROBLEM


async def test_rejections_are_logged_up_to_a_budget_per_remote(
    pair: dict[str, DemoNode], session: aiohttp.ClientSession
) -> None:
    """Unauthenticated garbage cannot grow the logs without bound: 30 lines a minute per
    address, then one line that counts the rest, by code."""
    with structlog.testing.capture_logs() as logs:
        for _ in range(100):  # bounded
            status, _, _ = await post(session, pair["DE"], b"not a token")
            assert status == 400
        await pair["DE"].service.stop()
    rejected = [e for e in logs if e["event"] == "request_rejected"]
    summary = [e for e in logs if e["event"] == "request_rejected_suppressed"]
    assert len(rejected) == 30
    assert len(summary) == 1
    assert summary[0]["rejected"] == 70
    assert summary[0]["codes"] == {"malformed_token": 70}
    assert summary[0]["remote"] == "127.0.0.1"


def test_each_remote_has_its_own_budget_and_windows_end() -> None:
    from connector.server.rejectlog import RejectionLog

    now = [0.0]
    rejections = RejectionLog(clock=lambda: now[0], per_window=2, window_s=60)
    with structlog.testing.capture_logs() as logs:
        for remote in ("192.0.2.1", "192.0.2.1", "192.0.2.1", "198.51.100.7"):
            rejections.rejected(
                remote=remote, path="/v1/query", status=401, code="bad_signature", detail="x"
            )
        now[0] = 61.0  # the first window is over: its count is told, a new budget starts
        rejections.rejected(
            remote="192.0.2.1", path="/v1/query", status=401, code="bad_signature", detail="x"
        )
    assert [(e["event"], e.get("remote")) for e in logs] == [
        ("request_rejected", "192.0.2.1"),
        ("request_rejected", "192.0.2.1"),
        ("request_rejected", "198.51.100.7"),
        ("request_rejected_suppressed", "192.0.2.1"),
        ("request_rejected", "192.0.2.1"),
    ]


# --- refused by the HTTP parser, before any handler ------------------------------------------

_HEAD = b"POST /v1/query HTTP/1.1\r\nHost: node\r\nContent-Type: application/jose\r\n"
PARSER_REFUSALS = {
    "a bad request line": ([b"GARBAGE\r\n\r\n"], 400, "malformed_request"),
    "a bad method": (
        [b"G@T /v1/identity HTTP/1.1\r\nHost: node\r\n\r\n"],
        400,
        "malformed_request",
    ),
    "smuggling: Content-Length with Transfer-Encoding": (
        [_HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
        400,
        "malformed_request",
    ),
    "smuggling: two Content-Lengths": (
        [_HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello"],
        400,
        "malformed_request",
    ),
    "Content-Encoding: br": (
        [_HEAD + b"Content-Encoding: br\r\nContent-Length: 5\r\n\r\nhello"],
        415,
        "unsupported_content_encoding",
    ),
    "a header of 9,000 bytes": (
        [b"GET /v1/identity HTTP/1.1\r\nHost: node\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n"],
        400,
        "malformed_request",
    ),
    # The head is read and handled first; then the parser refuses the body.
    "a bad chunk after the head": (
        [_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", b"zz\r\nhello\r\n0\r\n\r\n"],
        400,
        "malformed_request",
    ),
    "a gzip body that is not gzip": (
        [_HEAD + b"Content-Encoding: gzip\r\nContent-Length: 10\r\n\r\n", b"notgzip!!!"],
        415,
        "unsupported_content_encoding",
    ),
}


async def _raw(port: int, parts: list[bytes], *, tls: bool) -> tuple[int, str, dict[str, Any]]:
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="node" if tls else None
    )
    try:
        for i, part in enumerate(parts):
            if i:
                await asyncio.sleep(0.1)
            writer.write(part)
            await writer.drain()
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            body = await reader.readexactly(int(headers["Content-Length"]))
    finally:
        writer.close()
    return int(lines[0].split()[1]), headers["Content-Type"], orjson.loads(body)


@pytest.mark.parametrize("case", list(PARSER_REFUSALS))
async def test_what_the_http_parser_refuses_is_a_problem_too(
    case: str, pair: dict[str, DemoNode], caplog: pytest.LogCaptureFixture
) -> None:
    parts, status, code = PARSER_REFUSALS[case]
    with structlog.testing.capture_logs() as logs:
        got, ctype, doc = await _raw(pair["DE"].service.peer_port, parts, tls=True)
        await asyncio.sleep(0.1)
    assert (got, ctype) == (status, PROBLEM)
    assert doc["status"] == status
    assert doc["code"] == code
    assert doc["type"].endswith(code)
    assert "b'" not in doc["detail"]  # the offending bytes are not echoed back
    rejected = [e for e in logs if e["event"] == "request_rejected"]
    assert [(e["code"], e["status"], e["remote"]) for e in rejected] == [
        (code, status, "127.0.0.1")
    ]
    assert [e for e in logs if e["log_level"] == "error"] == []
    assert [r for r in caplog.records if r.name.startswith(("aiohttp", "asyncio"))] == []


async def test_the_local_listener_refuses_garbage_with_a_problem(
    pair: dict[str, DemoNode], caplog: pytest.LogCaptureFixture
) -> None:
    with structlog.testing.capture_logs() as logs:
        status, ctype, doc = await _raw(
            pair["DE"].service.local_port, [b"GARBAGE\r\n\r\n"], tls=False
        )
    assert (status, ctype, doc["code"]) == (400, PROBLEM, "malformed_request")
    assert [e["code"] for e in logs if e["event"] == "request_rejected"] == ["malformed_request"]
    assert [r for r in caplog.records if r.name.startswith("aiohttp")] == []
