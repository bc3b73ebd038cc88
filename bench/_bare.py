"""The bare loop: a check answered with the essential work alone, in a process of its own.

What no node can skip: read the compact JWS, verify its Ed25519 signature with the pinned
key, check its audience and lifetime, refuse a jti already used, look the document up in an
indexed SQLite table, append a hash-chained row to a log committed with synchronous=FULL in
a group commit (one commit in flight; what arrives meanwhile shares the next), and sign an
answer bound to the query (`in_reply_to`, `query_digest`), which the load generator verifies
as it verifies the node's. No policy, no validation models, no middleware, no logging: the
floor `python -m bench.peer_api` measures the node against, with the node's own TLS
certificate and signing key, the same load generator and the same tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions
import orjson
from aiohttp import web

from bench._baseline import tls_context
from bench._serve import until_signalled

GENESIS = "0" * 64
LIFETIME_SKEW_S = 30
COMMIT_DELAY_S = 0.002  # the node's default databases.commit_delay_ms
COMMIT_MAX_ROWS = 256  # and databases.commit_max_rows


def b64d(part: bytes) -> bytes:
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


def b64e(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def thumbprint(x: str) -> str:
    """RFC 7638 thumbprint of an Ed25519 public key: the kid a query's header names."""
    canonical = orjson.dumps({"crv": "Ed25519", "kty": "OKP", "x": x})
    return b64e(hashlib.sha256(canonical).digest()).decode()


class GroupLog:
    """Rows hash-chained and committed in groups: a row waits at most COMMIT_DELAY_S for
    others, one commit runs at a time in a thread of its own, and each waiter is released
    when its row is durable."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, iss TEXT NOT NULL, "
            "jti TEXT NOT NULL, entry BLOB NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, "
            "UNIQUE (iss, jti))"
        )
        self.head = GENESIS
        self.writer = ThreadPoolExecutor(max_workers=1)
        self.pending: list[tuple[str, str, bytes, asyncio.Future[None]]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.committing = False

    def append(self, iss: str, jti: str, entry: bytes) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self.pending.append((iss, jti, entry, done))
        if len(self.pending) >= COMMIT_MAX_ROWS and not self.committing:
            self._flush()
        elif self.timer is None and not self.committing:
            self.timer = loop.call_later(COMMIT_DELAY_S, self._flush)
        return done

    def _flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.pending or self.committing:
            return
        batch, self.pending = self.pending, []
        self.committing = True
        task = asyncio.get_running_loop().run_in_executor(self.writer, self._commit, batch)
        task.add_done_callback(lambda f: self._settle(batch, f))

    def _commit(self, batch: Sequence[tuple[str, str, bytes, Any]]) -> None:
        rows, prev = [], self.head
        for iss, jti, entry, _ in batch:
            digest = hashlib.sha256(prev.encode() + entry).hexdigest()
            rows.append((iss, jti, entry, prev, digest))
            prev = digest
        self.db.execute("BEGIN")
        try:
            self.db.executemany(
                "INSERT INTO log (iss, jti, entry, prev, hash) VALUES (?, ?, ?, ?, ?)", rows
            )
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        self.head = prev

    def _settle(
        self, batch: Sequence[tuple[str, str, bytes, asyncio.Future[None]]], f: Any
    ) -> None:
        self.committing = False
        failed = f.exception()
        for *_, done in batch:
            if not done.done():
                if failed is None:
                    done.set_result(None)
                else:
                    done.set_exception(failed)
        if self.pending:
            self._flush()  # what gathered while this commit ran


class Bare:
    """The handler's state: keys, the record table, the replay set, the log."""

    def __init__(self, *, node: str, seed: bytes, peer_x: str, records: Path, work: Path) -> None:
        self.node = node
        pk, self.secret = nacl.bindings.crypto_sign_seed_keypair(seed)
        self.header = b64e(
            orjson.dumps(
                {"alg": "EdDSA", "kid": thumbprint(b64e(pk).decode()), "typ": "ncb-answer+jwt"}
            )
        )
        self.peer_kid, self.peer_pk = thumbprint(peer_x), b64d(peer_x.encode())
        self.seen: set[tuple[str, str]] = set()
        self.store = sqlite3.connect(work / "records.db", check_same_thread=False)
        self.store.execute(
            "CREATE TABLE docs (ref TEXT PRIMARY KEY, number TEXT, country TEXT, "
            "document_type TEXT, status TEXT, reported_on TEXT)"
        )
        with records.open("rb") as fh:
            self.store.executemany(
                "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (
                        f"{node}:travel_documents:{i}",
                        r["number"],
                        r["country"],
                        r["document_type"],
                        r["status"],
                        r["reported_on"],
                    )
                    for i, r in enumerate(map(orjson.loads, fh))
                ),
            )
        self.store.execute("CREATE INDEX docs_number ON docs (number, country)")
        self.store.commit()
        self.log = GroupLog(work / "log.db")

    async def handle(self, request: web.Request) -> web.Response:
        token = await request.read()
        try:
            h, p, s = token.split(b".")
            header = orjson.loads(b64d(h))
            if header.get("alg") != "EdDSA" or header.get("kid") != self.peer_kid:
                return web.Response(status=401)
            nacl.bindings.crypto_sign_open(b64d(s) + h + b"." + p, self.peer_pk)
            claims = orjson.loads(b64d(p))
            iss, jti, check = claims["iss"], claims["jti"], claims["checks"][0]
            criteria = check["criteria"]
            now = time.time()
            if claims["aud"] != self.node or not (
                claims["iat"] - LIFETIME_SKEW_S <= now <= claims["exp"] + LIFETIME_SKEW_S
            ):
                return web.Response(status=401)
        except (ValueError, KeyError, TypeError, IndexError, nacl.exceptions.BadSignatureError):
            return web.Response(status=400)
        if (iss, jti) in self.seen:
            return web.Response(status=409)
        self.seen.add((iss, jti))
        row = self.store.execute(
            "SELECT ref, number, country, document_type, status, reported_on FROM docs "
            "WHERE number = ? AND country = ?",
            (criteria["number"], criteria.get("country", self.node)),
        ).fetchone()
        hits = (
            [
                {
                    "ref": row[0],
                    "score": 1.0,
                    "record": {
                        "number": row[1],
                        "country": row[2],
                        "document_type": row[3],
                        "status": row[4],
                        "reported_on": row[5],
                    },
                }
            ]
            if row
            else []
        )
        result = {
            "check": check["id"],
            "status": "hit" if hits else "no_hit",
            "level": "full",
            "hits": hits,
        }
        enquiry = os.urandom(12).hex()
        entry = orjson.dumps(
            {"enquiry": enquiry, "iss": iss, "jti": jti, "at": now, "results": [result]}
        )
        await self.log.append(iss, jti, entry)
        answer = orjson.dumps(
            {
                "iss": self.node,
                "aud": iss,
                "iat": int(now),
                "jti": os.urandom(12).hex(),
                "in_reply_to": jti,
                "query_digest": b64e(hashlib.sha256(token).digest()).decode(),
                "enquiry": enquiry,
                "results": [result],
            }
        )
        signing_input = self.header + b"." + b64e(answer)
        signature = nacl.bindings.crypto_sign(signing_input, self.secret)[:64]
        return web.Response(
            body=signing_input + b"." + b64e(signature), content_type="application/jose"
        )


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


async def serve(bare: Bare, *, port: int, cert: str, key: str) -> None:
    app = web.Application(client_max_size=64 * 1024 + 1)
    app.router.add_post("/v1/query", bare.handle)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(
        runner, "127.0.0.1", port, ssl_context=tls_context(cert, key), backlog=1024
    ).start()
    await until_signalled(runner)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._bare", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--signing-key", type=Path, required=True, help="the node's JWK file")
    p.add_argument("--peer-x", required=True, help="the client's Ed25519 public key (x)")
    p.add_argument("--records", type=Path, required=True, help="the imported NDJSON")
    p.add_argument("--work", type=Path, required=True, help="a new directory for its databases")
    a = p.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=False)
    jwk = orjson.loads(a.signing_key.read_bytes())
    bare = Bare(
        node=a.node, seed=b64d(jwk["d"].encode()), peer_x=a.peer_x, records=a.records, work=a.work
    )
    asyncio.run(serve(bare, port=a.port, cert=a.cert, key=a.key))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
