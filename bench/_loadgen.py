"""Load generator: pre-signs query tokens, posts them from N concurrent workers, times each."""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench._procs import machine_busy_seconds, tree_cpu_seconds
from connector.crypto.jws import PublicKey, Signer
from connector.crypto.keyfiles import read_signing_key
from connector.peers.trust import fingerprint_bytes
from connector.protocol import (
    JOSE_MEDIA_TYPE,
    MAX_LIFETIME_S,
    Check,
    Query,
    make_query,
    open_answer,
    sign_query,
)
from connector.vocabulary import AgencyKind, Category, Purpose

# A token is accepted until exp + 30 s skew = iat + 150 s; everything must be sent well before.
MAX_WINDOW_S = 100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec:
    """What one measurement does; written as JSON by the orchestrator."""

    name: str
    url: str
    tls_fingerprint: str | None
    key_file: str
    iss: str
    aud: str
    records: int
    hit_ratio: float
    requests: int
    warmup: int
    concurrency: int
    time_cap: float
    seed: int
    server_pid: int | None = None
    answer_key: dict[str, str] | None = None  # the node's public JWK: decode and verify answers
    verify_sample: int = 200


@dataclass(slots=True, kw_only=True)
class Result:
    name: str
    requests: int
    ok: int
    statuses: dict[str, int]
    first_error: str | None
    elapsed_s: float
    per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    client_cpu_s: float
    server_cpu_s: float | None
    machine_cpu_s: float
    sign_s: float
    warmup_ok: int
    capped: bool
    answers: dict[str, int] = field(default_factory=dict)
    verified: int = 0
    verify_failures: list[str] = field(default_factory=list)
    enquiry_ids: list[str] = field(default_factory=list)  # from every decoded answer, warm-up too


def document_number(i: int) -> str:
    """The i-th imported number; numbers from `records` on are not in the store."""
    return f"C{i:08d}"


def _checks(spec: Spec, rng: random.Random) -> Check:
    if rng.random() < spec.hit_ratio:
        number = document_number(rng.randrange(spec.records))
    else:
        number = document_number(spec.records + rng.randrange(10 * spec.records))
    return Check(
        id="1", category=Category.TRAVEL_DOCUMENTS, criteria={"number": number, "country": "DE"}
    )


def sign_tokens(spec: Spec, count: int) -> list[tuple[Query, bytes]]:
    """Every token with its own jti, iat now and the longest lifetime the protocol allows."""
    signer = Signer(read_signing_key(Path(spec.key_file)))
    rng = random.Random(spec.seed)
    now = time.time()
    out = []
    for _ in range(count):
        q = make_query(
            iss=spec.iss,
            aud=spec.aud,
            sub="border-police/4711",
            agency_kind=AgencyKind.BORDER,
            purpose=Purpose.BORDER_CONTROL,
            checks=(_checks(spec, rng),),
            now=now,
            lifetime=MAX_LIFETIME_S,
        )
        out.append((q, sign_query(q, signer)))
    return out


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _payload(token: bytes) -> Any:
    part = token.split(b".")[1]
    return orjson.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))


async def _drive(
    session: aiohttp.ClientSession,
    spec: Spec,
    tokens: Sequence[bytes],
    deadline: float,
    latencies: list[float],
    statuses: Counter[int],
    bodies: list[bytes | None],
    errors: list[str],
) -> None:
    headers = {"Content-Type": JOSE_MEDIA_TYPE}
    next_index = 0
    perf = time.perf_counter

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(tokens) and time.monotonic() < deadline:
            i = next_index
            next_index += 1
            started = perf()
            try:
                async with session.post(spec.url, data=tokens[i], headers=headers) as resp:
                    body = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, body = 0, str(exc).encode()
            latencies.append(perf() - started)
            statuses[status] += 1
            if status == 200:
                bodies[i] = body
            elif not errors:
                errors.append(f"HTTP {status}: {body[:300].decode(errors='replace')}")

    await asyncio.gather(*(worker() for _ in range(spec.concurrency)))


async def measure(spec: Spec) -> Result:
    if spec.time_cap > MAX_WINDOW_S:
        raise ValueError(f"time_cap is at most {MAX_WINDOW_S} s: tokens would expire")
    started_signing = time.perf_counter()
    signed = sign_tokens(spec, spec.warmup + spec.requests)
    sign_s = time.perf_counter() - started_signing
    warm_tokens = [t for _, t in signed[: spec.warmup]]
    timed = signed[spec.warmup :]
    timed_tokens = [t for _, t in timed]
    ssl_arg: aiohttp.Fingerprint | bool = (
        aiohttp.Fingerprint(fingerprint_bytes(spec.tls_fingerprint))
        if spec.tls_fingerprint
        else False
    )
    conn = aiohttp.TCPConnector(limit=spec.concurrency, ssl=ssl_arg)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        warm_lat: list[float] = []
        warm_status: Counter[int] = Counter()
        warm_errors: list[str] = []
        warm_bodies: list[bytes | None] = [None] * len(warm_tokens)
        await _drive(
            session,
            spec,
            warm_tokens,
            time.monotonic() + 30,
            warm_lat,
            warm_status,
            warm_bodies,
            warm_errors,
        )
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        bodies: list[bytes | None] = [None] * len(timed_tokens)
        errors: list[str] = []
        server_cpu0 = tree_cpu_seconds(spec.server_pid) if spec.server_pid else None
        cpu0 = time.process_time()
        machine0 = machine_busy_seconds()
        t0 = time.perf_counter()
        deadline = time.monotonic() + spec.time_cap
        await _drive(session, spec, timed_tokens, deadline, latencies, statuses, bodies, errors)
        elapsed = time.perf_counter() - t0
        client_cpu = time.process_time() - cpu0
        machine_cpu = machine_busy_seconds() - machine0
        server_cpu = (
            tree_cpu_seconds(spec.server_pid) - server_cpu0
            if spec.server_pid and server_cpu0 is not None
            else None
        )
    done = len(latencies)
    ordered = sorted(latencies)
    result = Result(
        name=spec.name,
        requests=done,
        ok=statuses[200],
        statuses={str(k): v for k, v in sorted(statuses.items())},
        first_error=errors[0] if errors else (warm_errors[0] if warm_errors else None),
        elapsed_s=elapsed,
        per_s=done / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(ordered, 50) * 1e3,
        p90_ms=percentile(ordered, 90) * 1e3,
        p99_ms=percentile(ordered, 99) * 1e3,
        max_ms=(ordered[-1] if ordered else math.nan) * 1e3,
        mean_ms=(sum(ordered) / done if done else math.nan) * 1e3,
        client_cpu_s=client_cpu,
        server_cpu_s=server_cpu,
        machine_cpu_s=machine_cpu,
        sign_s=sign_s,
        warmup_ok=warm_status[200],
        capped=done < len(timed_tokens),
    )
    if spec.answer_key is not None:
        _check_answers(spec, result, timed, bodies)
        result.enquiry_ids += [_payload(b)["enquiry"] for b in warm_bodies if b is not None]
    return result


def _check_answers(
    spec: Spec, result: Result, timed: Sequence[tuple[Query, bytes]], bodies: Sequence[bytes | None]
) -> None:
    """Count answer statuses; verify a sample fully (signature, aud, in_reply_to, digest)."""
    assert spec.answer_key is not None
    key = PublicKey.from_jwk(spec.answer_key)
    answers: Counter[str] = Counter()
    now = time.time()
    for (query, token), body in zip(timed, bodies, strict=True):
        if body is None:
            continue
        try:
            claims = _payload(body)
            result.enquiry_ids.append(claims["enquiry"])
            for r in claims["results"]:
                answers[r["status"]] += 1
        except (ValueError, KeyError, TypeError, IndexError):
            answers["undecodable"] += 1
            continue
        if result.verified + len(result.verify_failures) < spec.verify_sample:
            try:
                open_answer(
                    body,
                    key=key,
                    peer=spec.aud,
                    me=spec.iss,
                    query_token=token,
                    query=query,
                    now=now,
                )
                result.verified += 1
            except Exception as exc:
                result.verify_failures.append(str(exc))
    result.answers = dict(sorted(answers.items()))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._loadgen", description=__doc__)
    p.add_argument("spec", type=Path, help="JSON file with the Spec")
    p.add_argument("out", type=Path, help="where to write the Result as JSON")
    a = p.parse_args(argv)
    spec = Spec(**orjson.loads(a.spec.read_bytes()))
    result = asyncio.run(measure(spec))
    a.out.write_bytes(orjson.dumps(asdict(result), option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
