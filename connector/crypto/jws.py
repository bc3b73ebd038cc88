"""Ed25519 keys, JWKs and RFC 7638 thumbprints, and compact JWS signing and verification."""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.signing
import orjson

from connector.errors import BadSignature, MalformedToken

ACCEPTED_ALGS = frozenset({"EdDSA", "Ed25519"})  # RFC 8037 and its RFC 9864 fully-specified name


def b64url(data: bytes) -> str:
    return b64url_bytes(data).decode("ascii")


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64url_bytes(data: bytes) -> bytes:
    """Unpadded base64url as bytes, for building tokens without decoding and re-encoding."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def b64url_decode(text: str | bytes) -> bytes:
    """Strict: only the base64url alphabet, no padding (RFC 7515 §2)."""
    raw = text.encode("ascii") if isinstance(text, str) else text
    # Deleting the alphabet leaves nothing only when every byte belongs to it: one C pass,
    # where a regular expression costs several microseconds on a token's payload.
    if raw.translate(None, _B64URL_ALPHABET) or len(raw) % 4 == 1:
        raise ValueError("not unpadded base64url")
    return binascii.a2b_base64(raw.translate(_FROM_URLSAFE) + b"=" * (-len(raw) % 4))


def jwk_thumbprint(x: str) -> str:
    """RFC 7638 thumbprint of an Ed25519 OKP key: SHA-256 over the required members, sorted."""
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"' + x + '"}'
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicKey:
    """A peer's (or our own) Ed25519 public key, identified by its thumbprint."""

    raw: bytes
    # Derived from `raw` once: every answer's kid is compared with it.
    kid: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kid", jwk_thumbprint(b64url(self.raw)))

    @property
    def x(self) -> str:
        return b64url(self.raw)

    def jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid}

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> PublicKey:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise ValueError("only OKP Ed25519 keys are supported (kty=OKP, crv=Ed25519)")
        if "d" in jwk:
            raise ValueError("this JWK holds a private key; give the public part only")
        x = jwk.get("x")
        if not isinstance(x, str):
            raise ValueError("JWK member 'x' is missing")
        try:
            raw = b64url_decode(x)
        except (ValueError, binascii.Error) as exc:
            raise ValueError("JWK member 'x' is not base64url") from exc
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        key = cls(raw=raw)
        if "kid" in jwk and jwk["kid"] != key.kid:
            raise ValueError("JWK 'kid' is not the RFC 7638 thumbprint of the key")
        return key

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != 64 or len(self.raw) != 32:
            return False
        try:
            # What VerifyKey.verify does, without building a VerifyKey per message.
            nacl.bindings.crypto_sign_open(signature + signing_input, self.raw)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return False
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """Our node's Ed25519 private key."""

    seed: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(seed=bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> SigningKey:
        public = PublicKey.from_jwk({k: v for k, v in jwk.items() if k != "d"})
        d = jwk.get("d")
        if not isinstance(d, str):
            raise ValueError("JWK member 'd' (the private key) is missing")
        key = cls(seed=b64url_decode(d))
        if key.public != public:
            raise ValueError("JWK 'x' does not belong to 'd'")
        return key

    @property
    def public(self) -> PublicKey:
        return PublicKey(raw=bytes(nacl.signing.SigningKey(self.seed).verify_key))

    def private_jwk(self) -> dict[str, str]:
        return {**self.public.jwk(), "d": b64url(self.seed)}

    def sign(self, data: bytes) -> bytes:
        return nacl.signing.SigningKey(self.seed).sign(data).signature


class Signer:
    """Signs compact JWS with one key; keeps the derived secret key to avoid re-deriving it."""

    __slots__ = ("_headers", "_secret", "kid", "public")

    def __init__(self, key: SigningKey) -> None:
        self.adopt(key)

    def adopt(self, key: SigningKey) -> None:
        """Sign with `key` from now on (a rotation's new key coming into force): every part
        of the node holds this one Signer, so all of them switch at once. Signing runs on the
        event loop only, so no signature sees half of the switch."""
        self.public = key.public
        self._secret = key.seed + self.public.raw  # libsodium's secret key: seed, public key
        self.kid = self.public.kid
        # The encoded header of each typ, built once: every message of a kind has the same.
        self._headers: dict[str | None, bytes] = {}

    def _header(self, typ: str | None) -> bytes:
        encoded = self._headers.get(typ)
        if encoded is None:
            header = {"alg": "EdDSA", "kid": self.kid, **({"typ": typ} if typ else {})}
            encoded = self._headers[typ] = b64url_bytes(orjson.dumps(header))
        return encoded

    def sign_compact(
        self, payload: bytes, *, typ: str | None = None, header: Mapping[str, Any] | None = None
    ) -> bytes:
        """Compact JWS over `payload`; header `{"alg":"EdDSA","kid":…,"typ":…}` unless given."""
        encoded = self._header(typ) if header is None else b64url_bytes(orjson.dumps(dict(header)))
        signing_input = encoded + b"." + b64url_bytes(payload)
        # crypto_sign returns signature + message; SigningKey.sign would wrap both in objects.
        signature = nacl.bindings.crypto_sign(signing_input, self._secret)[:64]
        return signing_input + b"." + b64url_bytes(signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedJws:
    """A compact JWS split and decoded, not yet verified."""

    header: Mapping[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None

    @property
    def typ(self) -> str | None:
        """`typ` as RFC 7515 §4.1.9 compares it: case-insensitive, `application/` optional."""
        typ = self.header.get("typ")
        if not isinstance(typ, str):
            return None
        typ = typ.lower()
        return typ.removeprefix("application/") if "/" in typ else typ

    def verify_with(self, key: PublicKey) -> None:
        if not key.verify(self.signing_input, self.signature):
            raise BadSignature("the signature does not verify with the pinned key")


def parse_compact(token: bytes) -> ParsedJws:
    """Split a compact JWS (RFC 7515 §7.1) and decode its header; raises MalformedToken."""
    parts = token.strip().split(b".")
    if len(parts) != 3:
        raise MalformedToken("a compact JWS has three dot-separated parts")
    try:
        header_bytes = b64url_decode(parts[0])
        payload = b64url_decode(parts[1])
        signature = b64url_decode(parts[2])
    except (ValueError, binascii.Error) as exc:
        raise MalformedToken("a part of the JWS is not base64url") from exc
    try:
        header = orjson.loads(header_bytes)
    except orjson.JSONDecodeError as exc:
        raise MalformedToken("the JWS header is not JSON") from exc
    if not isinstance(header, dict):
        raise MalformedToken("the JWS header is not a JSON object")
    if header.get("alg") not in ACCEPTED_ALGS:
        raise MalformedToken("alg must be EdDSA (RFC 8037) or Ed25519 (RFC 9864)")
    if "crit" in header:
        raise MalformedToken("no critical header extensions are understood")
    if len(signature) != 64:
        raise MalformedToken("an Ed25519 signature is 64 bytes")
    return ParsedJws(
        header=header,
        payload=payload,
        signing_input=parts[0] + b"." + parts[1],
        signature=signature,
    )
