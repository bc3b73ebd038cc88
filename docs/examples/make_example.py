"""Build the worked example of docs/protocol.md (§12) from fixed keys, times and jtis."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing

from connector.records.categories import CATEGORIES
from connector.records.identifiers.documents import document_criteria
from connector.records.kinds.base import make_ref
from connector.records.kinds.documents import TravelDocuments
from connector.vocabulary import AnswerLevel, Category

# Everything below is deliberately built with the standard library and PyNaCl only, the way a
# foreign implementer would build it; tests/protocol/test_protocol_doc.py checks that the
# connector's own code produces the same bytes and accepts the tokens. The connector is imported
# only for facts about records (the record id and `ref`, what each answer level reveals, the
# parsed criteria).

BEGIN = "<!-- BEGIN GENERATED EXAMPLE (python docs/examples/make_example.py --write) -->"
END = "<!-- END GENERATED EXAMPLE -->"
DOC = Path(__file__).resolve().parent.parent / "protocol.md"

# RFC 8037 Appendix A.1. A published key: never use it, or DE's below, for anything real.
FR_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
FR_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
DE_SEED = bytes(range(32))
DE_NEXT_SEED = bytes(range(32, 64))  # the key DE rotates to (§12.6)

IAT = 1_790_000_000  # 2026-09-21T14:13:20Z
QUERY_LIFETIME = 60
ANSWER_IAT = IAT + 1
DE_URL = "https://de.ncb.example:8443"
ROTATED_AT = IAT + 86_400  # DE's admin runs `keys rotate` a day later
ACTIVATE_AT = ROTATED_AT + 3_600  # keys.activate_after_s
RETIRE_AT = ACTIVATE_AT + 7 * 86_400  # keys.overlap_s

MRZ = "P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<\nC01X00T478D<<6408125F2702283<<<<<<<<<<<<<<<4"

# DE's national record behind the hit, as DE's NCB imported it.
DE_RECORD_ROW: dict[str, Any] = {
    "id": "DE-TD-26-0117",
    "document_number": "DE1234567",
    "document_country": "DE",
    "document_type": "P",
    "status": "stolen",
    "reported_on": "2026-03-14",
    "holder_name": "Erika Mustermann",
    "remarks": "stolen from a car in Köln",
}


# Wire v1 names a travel document's number and country as its first peers did (§6.1, §7.4);
# written out here, not taken from the connector, so that the example checks the code.
V1_RECORD_NAMES = {"document_number": "number", "document_country": "country"}


def b64url(data: bytes) -> str:
    """RFC 4648 §5 base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact_json(value: Any) -> bytes:
    """JSON as the connector serialises it: no whitespace, members in insertion order, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def fixed_jti(label: str) -> str:
    """A stand-in for 16 random bytes: fixed so that the example is reproducible."""
    return b64url(hashlib.sha256(f"ncb-connector example: {label}".encode()).digest()[:16])


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def fixed_ulid(ms: int, label: str) -> str:
    """A ULID (48-bit milliseconds, 80 'random' bits, Crockford base32), as DE's enquiry ids."""
    rand = int.from_bytes(hashlib.sha256(label.encode()).digest()[:10], "big")
    value = (ms << 80) | rand
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


@dataclass(frozen=True, slots=True)
class Node:
    """One node's Ed25519 key pair and its JWK form."""

    name: str
    seed: bytes

    @property
    def x(self) -> str:
        return b64url(bytes(nacl.signing.SigningKey(self.seed).verify_key))

    @property
    def thumbprint_input(self) -> str:
        """RFC 7638 §3: the required members, sorted, no whitespace."""
        return '{"crv":"Ed25519","kty":"OKP","x":"' + self.x + '"}'

    @property
    def kid(self) -> str:
        return b64url(hashlib.sha256(self.thumbprint_input.encode("ascii")).digest())

    def public_jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid}


@dataclass(frozen=True, slots=True)
class Signed:
    """A compact JWS and the steps that made it."""

    header: dict[str, Any]
    claims: dict[str, Any]
    header_json: bytes
    payload_json: bytes
    signing_input: bytes
    signature: bytes
    token: bytes


def sign(node: Node, typ: str, claims: dict[str, Any]) -> Signed:
    """RFC 7515 §5.1 with RFC 8037 EdDSA over Ed25519."""
    header = {"alg": "EdDSA", "kid": node.kid, "typ": typ}
    header_json, payload_json = compact_json(header), compact_json(claims)
    signing_input = (b64url(header_json) + "." + b64url(payload_json)).encode("ascii")
    signature = nacl.signing.SigningKey(node.seed).sign(signing_input).signature
    token = signing_input + b"." + b64url(signature).encode("ascii")
    return Signed(
        header=header,
        claims=claims,
        header_json=header_json,
        payload_json=payload_json,
        signing_input=signing_input,
        signature=signature,
        token=token,
    )


@dataclass(frozen=True, slots=True)
class Example:
    fr: Node
    de: Node
    query: Signed
    query_digest: str
    answer: Signed
    identity: Signed
    rotation: Signed
    rotating_identity: Signed
    de_next: Node
    de_tls_fingerprint: str
    record_id: str
    record_fields: dict[str, Any]


def _tls_fingerprint_stand_in() -> str:
    """Not a real certificate: the SHA-256 of a label, in the `AB:CD:…` form a pin takes."""
    digest = hashlib.sha256(b"ncb-connector example: DE's DER certificate").hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def build() -> Example:
    fr = Node("FR", base64.urlsafe_b64decode(FR_D + "="))
    de = Node("DE", DE_SEED)
    if fr.x != FR_X:
        raise SystemExit("the RFC 8037 A.1 key does not give the published x")

    query_claims: dict[str, Any] = {
        "iss": "FR",
        "aud": "DE",
        "iat": IAT,
        "exp": IAT + QUERY_LIFETIME,
        "jti": fixed_jti("query jti"),
        "sub": "border-police/4711",
        "agency_kind": "border",
        "purpose": "border_control",
        "checks": [
            {
                "id": "a",
                "category": "travel_documents",
                "criteria": {
                    "number": "de 123-4567",
                    "country": "DE",
                    "document_type": "P",
                },
                "limit": 10,
            },
            {"id": "b", "category": "travel_documents", "criteria": {"mrz": MRZ}, "limit": 10},
            {
                "id": "c",
                "category": "wanted_persons",
                "criteria": {
                    "last_name": "MUSTERMANN",
                    "first_name": "ERIKA",
                    "birth_date": "1964-08-12",
                },
                "limit": 10,
            },
        ],
        "case": "PAF-CDG-2026-000815",
    }
    query = sign(fr, "ncb-query+jwt", query_claims)
    query_digest = b64url(hashlib.sha256(query.token).digest())

    record = TravelDocuments().parse_row(DE_RECORD_ROW)
    full = CATEGORIES[Category.TRAVEL_DOCUMENTS].visible_fields(AnswerLevel.FULL)
    answer_claims: dict[str, Any] = {
        "iss": "DE",
        "aud": "FR",
        "iat": ANSWER_IAT,
        "jti": fixed_jti("answer jti"),
        "in_reply_to": query_claims["jti"],
        "query_digest": query_digest,
        "enquiry": fixed_ulid(ANSWER_IAT * 1000, "enquiry"),
        "results": [
            {
                "check": "a",
                "status": "hit",
                "level": "full",
                "hits": [
                    {
                        "ref": make_ref("DE", Category.TRAVEL_DOCUMENTS, record.id),
                        "score": 1.0,
                        "record": {
                            V1_RECORD_NAMES.get(k, k): v
                            for k, v in record.fields.items()
                            if k in full
                        },
                    }
                ],
            },
            {"check": "b", "status": "no_hit", "level": "full", "hits": []},
            {"check": "c", "status": "denied", "level": "none", "hits": [], "reason": "policy"},
        ],
    }
    answer = sign(de, "ncb-answer+jwt", answer_claims)

    fingerprint = _tls_fingerprint_stand_in()
    identity_claims: dict[str, Any] = {
        "iss": "DE",
        "iat": IAT,
        "exp": IAT + 300,
        "protocol": 1,
        "keys": [de.public_jwk()],
        "tls_fingerprint": fingerprint,
        "url": DE_URL,
    }
    identity = sign(de, "ncb-identity+jwt", identity_claims)

    de_next = Node("DE next", DE_NEXT_SEED)
    rotation = sign(
        de,
        "ncb-rotation+jwt",
        {
            "iss": "DE",
            "iat": ROTATED_AT,
            "exp": RETIRE_AT,
            "kind": "key",
            "replaces": de.kid,
            "activate_at": ACTIVATE_AT,
            "jwk": de_next.public_jwk(),
        },
    )
    rotating_identity = sign(
        de,
        "ncb-identity+jwt",
        {
            "iss": "DE",
            "iat": ROTATED_AT,
            "exp": ROTATED_AT + 300,
            "protocol": 1,
            "keys": [{**de.public_jwk(), "not_after": RETIRE_AT}, de_next.public_jwk()],
            "tls_fingerprint": fingerprint,
            "url": DE_URL,
            "tls_fingerprints": [fingerprint],
            "rotations": [rotation.token.decode("ascii")],
        },
    )
    return Example(
        fr=fr,
        de=de,
        query=query,
        query_digest=query_digest,
        answer=answer,
        identity=identity,
        rotation=rotation,
        rotating_identity=rotating_identity,
        de_next=de_next,
        de_tls_fingerprint=fingerprint,
        record_id=record.id,
        record_fields=dict(record.fields),
    )


# --- rendering as Markdown --------------------------------------------------------------------


def _block(lang: str, text: str) -> list[str]:
    return ["```" + lang, text, "```", ""]


def _steps(signed: Signed) -> list[str]:
    head, payload, sig = signed.token.decode("ascii").split(".")
    return [
        "Protected header, exactly as serialised (UTF-8):",
        "",
        *_block("json", signed.header_json.decode("utf-8")),
        "Claims set (the JWS payload), exactly as serialised (UTF-8):",
        "",
        *_block("json", signed.payload_json.decode("utf-8")),
        "BASE64URL(header):",
        "",
        *_block("text", head),
        "BASE64URL(payload):",
        "",
        *_block("text", payload),
        "Signing input, `BASE64URL(header) || '.' || BASE64URL(payload)`, ASCII, "
        f"{len(signed.signing_input)} bytes:",
        "",
        *_block("text", signed.signing_input.decode("ascii")),
        "Ed25519 signature (64 bytes) as hex, then BASE64URL(signature):",
        "",
        *_block("text", signed.signature.hex() + "\n" + sig),
    ]


def _level_table(ex: Example) -> list[str]:
    spec = CATEGORIES[Category.TRAVEL_DOCUMENTS]
    out = ["| level | `record` in the hit |", "|---|---|"]
    for level in (AnswerLevel.HIT, AnswerLevel.SUMMARY, AnswerLevel.FULL):
        shown = spec.visible_fields(level)
        record = {V1_RECORD_NAMES.get(k, k): v for k, v in ex.record_fields.items() if k in shown}
        out.append(f"| `{level.value}` | `{compact_json(record).decode('utf-8')}` |")
    return [*out, ""]


def _criteria_lines(ex: Example) -> list[str]:
    out = ["| check | criteria as sent | what DE matches on |", "|---|---|---|"]
    for check in ex.query.claims["checks"]:
        sent = compact_json(check["criteria"]).decode("utf-8").replace("|", "\\|")
        if check["category"] == "travel_documents":
            parsed = document_criteria(check["criteria"])
            derived = (
                f"number key `{parsed.number_key}`, country `{parsed.country}`, "
                f"document type `{parsed.document_type}`"
                + (" (read from a TD3 MRZ whose check digits verify)" if parsed.from_mrz else "")
            )
        else:
            derived = "a name search (§6.3)"
        out.append(f"| `{check['id']}` | `{sent}` | {derived} |")
    return [*out, ""]


def render(ex: Example) -> str:
    lines: list[str] = [
        BEGIN,
        "",
        "### 12.1 Keys",
        "",
        "FR signs with the key of RFC 8037 Appendix A.1; DE with the key whose 32-byte seed is "
        "the bytes 0x00, 0x01, …, 0x1f. Both private keys are published: never use them.",
        "",
    ]
    for node, d in ((ex.fr, FR_D), (ex.de, b64url(DE_SEED))):
        lines += [
            f"**{node.name}** private JWK (`d` is the 32-byte seed):",
            "",
            *_block("json", compact_json({**node.public_jwk(), "d": d}).decode()),
            f"RFC 7638 thumbprint input of {node.name}'s key (ASCII, no whitespace):",
            "",
            *_block("json", node.thumbprint_input),
            f"{node.name}'s `kid` = BASE64URL(SHA-256(thumbprint input)) = `{node.kid}`",
            "",
        ]
    lines += [
        "### 12.2 The query FR sends to DE",
        "",
        f"Built at `iat` = {IAT} (2026-09-21T14:13:20Z) with a lifetime of {QUERY_LIFETIME} s. "
        "The two jtis of the example are fixed so that the tokens are reproducible; a real jti "
        "is 16 bytes from a CSPRNG.",
        "",
        "The claims, indented for reading (whitespace and member order do not matter to a "
        "receiver):",
        "",
        *_block("json", pretty_json(ex.query.claims)),
        *_steps(ex.query),
        f"The query token: the body of `POST {DE_URL}/v1/query` "
        f"({len(ex.query.token)} bytes, `Content-Type: application/jose`):",
        "",
        *_block("text", ex.query.token.decode("ascii")),
        "What DE derives from each check's criteria (§6):",
        "",
        *_criteria_lines(ex),
        "### 12.3 `query_digest`",
        "",
        "SHA-256 over the exact bytes of the query token above (the HTTP request body):",
        "",
        *_block(
            "text",
            "SHA-256 (hex)       = "
            + hashlib.sha256(ex.query.token).hexdigest()
            + "\nquery_digest        = "
            + ex.query_digest,
        ),
        "### 12.4 The answer DE returns",
        "",
        "DE's policy gives FR `full` for `travel_documents` and nothing for `wanted_persons`; "
        f"DE holds the stolen passport of check `a` under the record id `{ex.record_id}`, and "
        "nothing for check `b`. Claims, indented for reading:",
        "",
        *_block("json", pretty_json(ex.answer.claims)),
        *_steps(ex.answer),
        f"The answer token: the body of the `200` response ({len(ex.answer.token)} bytes, "
        "`Content-Type: application/jose`):",
        "",
        *_block("text", ex.answer.token.decode("ascii")),
        "FR verifies it with DE's pinned key (`kid` "
        f"`{ex.de.kid}`) as §8 says: typ `ncb-answer+jwt`, `iss` = `DE`, `aud` = `FR`, "
        "`in_reply_to` = the query's `jti`, `query_digest` = the value of §12.3, `iat` within "
        "150 s, one result for each of the checks `a`, `b`, `c`.",
        "",
        "The same hit as each answer level would reveal it (§7.4; a rule's `redact` would "
        "remove more):",
        "",
        *_level_table(ex),
        "### 12.5 DE's identity token",
        "",
        f"What `GET {DE_URL}/v1/identity` returns at `iat` = {IAT}. The `tls_fingerprint` here "
        "is a stand-in (the SHA-256 of a label, not of a certificate); a real node puts the "
        "fingerprint of its own certificate there.",
        "",
        *_block("json", pretty_json(ex.identity.claims)),
        "The identity token:",
        "",
        *_block("text", ex.identity.token.decode("ascii")),
        "### 12.6 DE rotates its key",
        "",
        f"A day later (`iat` = {ROTATED_AT}) DE's admin runs `ncb-connector keys rotate`. DE's "
        "next key is the one whose 32-byte seed is the bytes 0x20, 0x21, …, 0x3f (published: "
        f"never use it); its `kid` is `{ex.de_next.kid}`. DE signs this rotation statement "
        "(§9.1) with the key FR pins, the one it replaces:",
        "",
        *_block("json", pretty_json(ex.rotation.header)),
        *_block("json", pretty_json(ex.rotation.claims)),
        "The statement:",
        "",
        *_block("text", ex.rotation.token.decode("ascii")),
        f"Until `activate_at` ({ACTIVATE_AT}, an hour later) DE still signs with its old key, "
        "and its identity token lists both keys, the old one with its `not_after`, and "
        "carries the statement:",
        "",
        *_block("json", pretty_json(ex.rotating_identity.claims)),
        "The identity token:",
        "",
        *_block("text", ex.rotating_identity.token.decode("ascii")),
        "At its next health check FR verifies the statement with the key it pins for DE, "
        f"pins `{ex.de_next.kid}` beside it and gives the old key `not_after` = {RETIRE_AT}. "
        "From `activate_at` DE signs with the new key; after `not_after` FR refuses the old "
        "one (`401 unknown_key`).",
        "",
        END,
    ]
    return "\n".join(lines)


def splice(document: str, generated: str) -> str:
    """`document` with the text between the markers (inclusive) replaced by `generated`."""
    start, end = document.index(BEGIN), document.index(END) + len(END)
    return document[:start] + generated + document[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--write",
        action="store_true",
        help=f"replace the generated section of {DOC} instead of printing it",
    )
    args = parser.parse_args(argv)
    generated = render(build())
    if args.write:
        DOC.write_text(splice(DOC.read_text(encoding="utf-8"), generated), encoding="utf-8")
    else:
        sys.stdout.write(generated + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
