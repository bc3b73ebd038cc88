"""Ed25519 JWS and JWK thumbprints against the RFCs' own examples."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.crypto.jws import (
    PublicKey,
    Signer,
    SigningKey,
    b64url,
    b64url_bytes,
    b64url_decode,
    parse_compact,
)
from connector.errors import BadSignature, MalformedToken

# RFC 8037 Appendix A.1
RFC_JWK = {
    "kty": "OKP",
    "crv": "Ed25519",
    "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
# RFC 8037 Appendix A.4
RFC_JWS = (
    b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    b"hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def test_rfc8037_a3_thumbprint() -> None:
    public = PublicKey.from_jwk({k: v for k, v in RFC_JWK.items() if k != "d"})
    assert public.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rfc8037_a4_signature_byte_for_byte() -> None:
    signer = Signer(SigningKey.from_jwk(RFC_JWK))
    token = signer.sign_compact(b"Example of Ed25519 signing", header={"alg": "EdDSA"})
    assert token == RFC_JWS


def test_rfc8037_a5_verification() -> None:
    jws = parse_compact(RFC_JWS)
    key = PublicKey.from_jwk({k: v for k, v in RFC_JWK.items() if k != "d"})
    jws.verify_with(key)
    assert jws.payload == b"Example of Ed25519 signing"


def test_tampered_signature_fails() -> None:
    head, _payload, sig = RFC_JWS.split(b".")
    forged = head + b"." + b64url(b"Example of Ed25519 signinG").encode() + b"." + sig
    key = PublicKey.from_jwk({k: v for k, v in RFC_JWK.items() if k != "d"})
    with pytest.raises(BadSignature):
        parse_compact(forged).verify_with(key)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (b"not a jws", "three"),
        (b"a.b", "three"),
        (b"!!!.e30.AAAA", "base64url"),
        (b64url(b"[1]").encode() + b".e30." + b64url(bytes(64)).encode(), "JSON object"),
        (b64url(b'{"alg":"none"}').encode() + b".e30." + b64url(bytes(64)).encode(), "alg"),
        (b64url(b'{"alg":"HS256"}').encode() + b".e30." + b64url(bytes(64)).encode(), "alg"),
        (
            b64url(b'{"alg":"EdDSA","crit":["x"]}').encode()
            + b".e30."
            + b64url(bytes(64)).encode(),
            "critical",
        ),
        (b64url(b'{"alg":"EdDSA"}').encode() + b".e30." + b64url(bytes(10)).encode(), "64 bytes"),
        (b64url(b'{"alg":"EdDSA"}').encode() + b".e30=." + b64url(bytes(64)).encode(), "base64url"),
    ],
)
def test_malformed_tokens(token: bytes, message: str) -> None:
    with pytest.raises(MalformedToken, match=message):
        parse_compact(token)


def test_alg_ed25519_accepted() -> None:
    signer = Signer(SigningKey.generate())
    token = signer.sign_compact(b"{}", header={"alg": "Ed25519", "kid": signer.kid})
    parse_compact(token).verify_with(signer.public)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "EC", "crv": "P-256", "x": "AA"},
        {"kty": "OKP", "crv": "X25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"},
        {"kty": "OKP", "crv": "Ed25519"},
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "kid": "wrong",
        },
        RFC_JWK,
    ],
)
def test_bad_public_jwks(jwk: dict[str, str]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        PublicKey.from_jwk(jwk)


def test_private_jwk_round_trip() -> None:
    key = SigningKey.generate()
    assert SigningKey.from_jwk(key.private_jwk()) == key
    assert PublicKey.from_jwk(key.public.jwk()) == key.public


@given(st.binary(max_size=200))
def test_b64url_round_trip_matches_the_standard_library(data: bytes) -> None:
    encoded = base64.urlsafe_b64encode(data).rstrip(b"=")
    assert b64url_bytes(data) == encoded
    assert b64url(data) == encoded.decode()
    assert b64url_decode(encoded) == data


@pytest.mark.parametrize(
    "text", [b"AAA=", b"AA==", b"A+B/", b"AB C", b"AB\nC", b"A", b"AAAAA", "AAÄA".encode(), b"AA.A"]
)
def test_b64url_decode_is_strict(text: bytes) -> None:
    with pytest.raises(ValueError, match="base64url"):
        b64url_decode(text)


def test_a_key_is_its_bytes() -> None:
    """The thumbprint is derived, so keys compare and hash by their bytes alone."""
    raw = SigningKey.generate().public.raw
    assert PublicKey(raw=raw) == PublicKey(raw=raw)
    assert len({PublicKey(raw=raw), PublicKey(raw=raw)}) == 1
    assert PublicKey(raw=raw).kid == PublicKey.from_jwk(PublicKey(raw=raw).jwk()).kid


def test_a_wrong_length_signature_or_key_does_not_verify() -> None:
    signer = Signer(SigningKey.generate())
    token = parse_compact(signer.sign_compact(b"{}", typ="x"))
    assert signer.public.verify(token.signing_input, token.signature)
    assert not signer.public.verify(token.signing_input, token.signature[:63])
    assert not PublicKey(raw=signer.public.raw[:31]).verify(token.signing_input, token.signature)
