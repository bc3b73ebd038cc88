"""A peer built on an independent JOSE library (joserfc) talks to the connector both ways."""

from __future__ import annotations

import base64
import hashlib
import os
import time
import warnings

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey

from connector.crypto.jws import PublicKey
from connector.demo import DemoNode
from connector.peers.trust import Peer, PinnedKey, fingerprint_bytes, save_trust_store

pytestmark = pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def foreign(pair: dict[str, DemoNode]) -> OKPKey:
    """NL: a peer whose software is not ours, trusted by DE like any other."""
    key = OKPKey.generate_key("Ed25519")
    public = PublicKey.from_jwk(key.as_dict(private=False))
    de = pair["DE"].node
    trust = de.live.trust.with_peer(
        Peer(id="NL", url="http://127.0.0.1:9", insecure=True, keys=(PinnedKey(key=public),))
    )
    save_trust_store(de.live.peers_file, trust)
    de.live.reload()
    return key


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519"])
async def test_joserfc_query_accepted_and_answer_verified(
    pair: dict[str, DemoNode], foreign: OKPKey, session: aiohttp.ClientSession, alg: str
) -> None:
    de = pair["DE"]
    now = int(time.time())
    jti = _b64(os.urandom(16))
    claims = {
        "iss": "NL",
        "aud": "DE",
        "iat": now,
        "exp": now + 60,
        "jti": jti,
        "sub": "kmar/77",
        "agency_kind": "border",
        "purpose": "border_control",
        "checks": [
            {
                "id": "a",
                "category": "travel_documents",
                "criteria": {"number": "DE1234567", "country": "DE"},
            }
        ],
    }
    header = {"alg": alg, "typ": "ncb-query+jwt", "kid": foreign.thumbprint()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        query = jwt.encode(header, claims, foreign, algorithms=[alg])
    # NL is in the demo policy's Schengen group, so this is a full hit.
    async with session.post(
        f"https://127.0.0.1:{de.service.peer_port}/v1/query",
        data=query.encode(),
        headers={"Content-Type": "application/jose"},
        ssl=aiohttp.Fingerprint(fingerprint_bytes(de.node.tls_fingerprint)),
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/jose"
        answer = (await resp.read()).decode()
    de_key = OKPKey.import_key(dict[str, str | list[str]](de.node.signer.public.jwk()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        token = jwt.decode(answer, de_key, algorithms=["EdDSA", "Ed25519"])
    assert token.header["typ"] == "ncb-answer+jwt"
    assert token.header["kid"] == de_key.thumbprint()
    c = token.claims
    assert (c["iss"], c["aud"], c["in_reply_to"]) == ("DE", "NL", jti)
    assert c["query_digest"] == _b64(hashlib.sha256(query.encode()).digest())
    assert c["results"][0]["status"] == "hit"
    assert c["results"][0]["hits"][0]["ref"] == "DE:travel_documents:DE-TD-26-0117"


async def test_identity_token_verifies_with_joserfc(
    pair: dict[str, DemoNode], session: aiohttp.ClientSession
) -> None:
    de = pair["DE"]
    async with session.get(
        f"https://127.0.0.1:{de.service.peer_port}/v1/identity",
        ssl=aiohttp.Fingerprint(fingerprint_bytes(de.node.tls_fingerprint)),
    ) as resp:
        token = (await resp.read()).decode()
    claims_jwk = OKPKey.import_key(dict[str, str | list[str]](de.node.signer.public.jwk()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoded = jwt.decode(token, claims_jwk, algorithms=["EdDSA"])
    assert decoded.header["typ"] == "ncb-identity+jwt"
    assert decoded.claims["iss"] == "DE"
    assert decoded.claims["protocol"] == 1
    assert decoded.claims["tls_fingerprint"] == de.node.tls_fingerprint
    assert decoded.claims["keys"][0]["kid"] == claims_jwk.thumbprint()
