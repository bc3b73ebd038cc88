"""docs/protocol.md's worked example is what the code produces today, and the code accepts it."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import orjson
import pytest
from joserfc import jws, jwt
from joserfc.jwk import OKPKey

from connector import errors, protocol
from connector.crypto.jws import PublicKey, Signer, SigningKey, b64url, b64url_decode, parse_compact
from connector.errors import ConnectorError, InvalidCriteria, ProtocolError
from connector.protocol import (
    CheckResult,
    Envelope,
    Hit,
    Query,
    check_window,
    open_answer,
    open_envelope,
    open_identity,
    parse_query,
    sign_answer,
    sign_identity,
    sign_query,
)
from connector.records.criteria import parse_criteria
from connector.vocabulary import AnswerLevel, Category

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"
SCRIPT = ROOT / "docs" / "examples" / "make_example.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ncb_protocol_doc_example", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


mx = _load_script()
EX = mx.build()
IAT: int = mx.IAT
ANSWER_IAT: int = mx.ANSWER_IAT
QUERY_TOKEN: bytes = EX.query.token
ANSWER_TOKEN: bytes = EX.answer.token
IDENTITY_TOKEN: bytes = EX.identity.token

FR_KEY = SigningKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "d": mx.FR_D, "x": mx.FR_X})
DE_KEY = SigningKey(seed=mx.DE_SEED)
FR, DE = Signer(FR_KEY), Signer(DE_KEY)


def resolve(kid: str) -> tuple[str, PublicKey] | None:
    """DE's trust store: FR only."""
    return ("FR", FR.public) if kid == FR.kid else None


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _open(token: bytes = QUERY_TOKEN, now: float = IAT) -> Envelope:
    return open_envelope(token, resolve_kid=resolve, me="DE", now=now)


def _query() -> Query:
    return parse_query(_open())


@pytest.fixture
def no_joserfc_warnings() -> Iterator[None]:
    """joserfc warns that EdDSA is deprecated in favour of Ed25519; both are the protocol's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- the document is the script's output, byte for byte ----------------------------------


def test_document_holds_the_generated_example() -> None:
    doc = _doc()
    start, end = doc.index(mx.BEGIN), doc.index(mx.END) + len(mx.END)
    assert doc[start:end] == mx.render(EX), (
        "docs/protocol.md is stale: run python docs/examples/make_example.py --write"
    )
    for token in (QUERY_TOKEN, ANSWER_TOKEN, IDENTITY_TOKEN):
        assert token.decode("ascii") in doc[start:end]


def test_script_prints_the_section(capsys: pytest.CaptureFixture[str]) -> None:
    assert mx.main([]) == 0
    assert capsys.readouterr().out == mx.render(EX) + "\n"


# --- the connector's own code signs the same bytes -----------------------------------------


def test_keys_and_thumbprints() -> None:
    assert FR.kid == EX.fr.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"  # RFC 8037 A.3
    assert DE.kid == EX.de.kid
    assert DE.public.jwk() == EX.de.public_jwk()
    assert FR.public.x == mx.FR_X


def test_connector_signs_the_same_query() -> None:
    assert sign_query(_query(), FR) == QUERY_TOKEN


def test_connector_signs_the_same_answer() -> None:
    claims: dict[str, Any] = EX.answer.claims
    results = tuple(
        CheckResult(
            check=r["check"],
            status=r["status"],
            level=AnswerLevel(r["level"]),
            hits=tuple(Hit(ref=h["ref"], score=h["score"], record=h["record"]) for h in r["hits"]),
            reason=r.get("reason"),
            retry_after=r.get("retry_after"),
        )
        for r in claims["results"]
    )
    with mock.patch.object(protocol, "new_jti", return_value=claims["jti"]):
        token = sign_answer(
            signer=DE,
            iss="DE",
            aud="FR",
            in_reply_to=_query().jti,
            query_digest=protocol.digest(QUERY_TOKEN),
            enquiry=claims["enquiry"],
            results=results,
            now=ANSWER_IAT,
        )
    assert token == ANSWER_TOKEN
    assert claims["query_digest"] == protocol.digest(QUERY_TOKEN) == EX.query_digest


def test_connector_signs_the_same_identity() -> None:
    token = sign_identity(
        signer=DE,
        node="DE",
        keys=[DE.public.jwk()],
        tls_fingerprint=EX.de_tls_fingerprint,
        url=mx.DE_URL,
        now=IAT,
    )
    assert token == IDENTITY_TOKEN


def test_connector_signs_the_same_rotation_and_rotating_identity() -> None:
    """§12.6: the statement and the identity token during a rotation are what DE's node
    publishes, byte for byte, and FR's pin of DE accepts the statement."""
    next_key = SigningKey(seed=mx.DE_NEXT_SEED)
    statement = protocol.sign_rotation(
        DE,
        node="DE",
        replaces=DE.kid,
        new_key=next_key.public,
        activate_at=mx.ACTIVATE_AT,
        not_after=mx.RETIRE_AT,
        now=mx.ROTATED_AT,
    )
    assert statement.encode() == EX.rotation.token
    identity = sign_identity(
        signer=DE,
        node="DE",
        keys=[{**DE.public.jwk(), "not_after": mx.RETIRE_AT}, next_key.public.jwk()],
        tls_fingerprint=EX.de_tls_fingerprint,
        url=mx.DE_URL,
        now=mx.ROTATED_AT,
        tls_fingerprints=[EX.de_tls_fingerprint],
        rotations=[statement],
    )
    assert identity == EX.rotating_identity.token
    claims, key = open_identity(identity, now=mx.ROTATED_AT)
    assert key.kid == DE.kid
    opened = protocol.open_rotation(
        claims.rotations[0], keys=[DE.public], node="DE", now=mx.ROTATED_AT
    )
    assert opened.new_key == next_key.public
    assert opened.old == DE.kid
    assert (opened.activate_at, opened.not_after) == (mx.ACTIVATE_AT, mx.RETIRE_AT)


# --- the connector accepts the example -----------------------------------------------------


def test_query_is_accepted() -> None:
    envelope = _open()
    assert (envelope.iss, envelope.kid) == ("FR", FR.kid)
    query = parse_query(envelope)
    assert (query.iss, query.aud, query.iat, query.exp) == ("FR", "DE", IAT, IAT + 60)
    assert query.case == "PAF-CDG-2026-000815"
    assert [c.id for c in query.checks] == ["a", "b", "c"]
    a, b = (parse_criteria(check.category, check.criteria) for check in query.checks[:2])
    assert a is not None
    assert (a.number_key, a.country, a.document_type) == ("DE1234567", "DE", "P")
    assert b is not None
    assert (b.number_key, b.country, b.from_mrz) == ("C01X00T47", "DE", True)
    # wanted_persons by name: a name search.
    c = parse_criteria(query.checks[2].category, query.checks[2].criteria)
    assert c is not None
    assert (c.tokens, c.birth_date) == (("erika", "mustermann"), "1964-08-12")


@pytest.mark.parametrize("now", [IAT - 30, IAT, IAT + 60 + 30])
def test_query_window_edges_accepted(now: int) -> None:
    _open(now=now)


@pytest.mark.parametrize("now", [IAT - 31, IAT + 60 + 31])
def test_query_window_edges_refused(now: int) -> None:
    with pytest.raises(errors.StaleToken):
        _open(now=now)


def test_answer_verifies() -> None:
    answer = open_answer(
        ANSWER_TOKEN,
        key=DE.public,
        peer="DE",
        me="FR",
        query_token=QUERY_TOKEN,
        query=_query(),
        now=ANSWER_IAT,
    )
    assert [(r.check, r.status, r.level.value) for r in answer.results] == [
        ("a", "hit", "full"),
        ("b", "no_hit", "full"),
        ("c", "denied", "none"),
    ]
    assert answer.results[0].hits[0].ref == "DE:travel_documents:DE-TD-26-0117"
    assert answer.results[2].reason == "policy"


def test_answer_to_another_query_is_refused() -> None:
    other = sign_query(parse_query(_open()), FR) + b" "
    with pytest.raises(errors.BadAnswer, match="query_digest"):
        open_answer(
            ANSWER_TOKEN,
            key=DE.public,
            peer="DE",
            me="FR",
            query_token=other,
            query=_query(),
            now=ANSWER_IAT,
        )


def test_identity_opens() -> None:
    claims, key = open_identity(IDENTITY_TOKEN, now=IAT)
    assert (claims.iss, claims.protocol, key.kid) == ("DE", 1, DE.kid)


# --- an independent JOSE library agrees ----------------------------------------------------


@pytest.mark.usefixtures("no_joserfc_warnings")
@pytest.mark.parametrize(
    ("name", "signer_jwk", "typ"),
    [
        ("query", {"d": mx.FR_D, "x": mx.FR_X}, "ncb-query+jwt"),
        ("answer", {"d": b64url(mx.DE_SEED), "x": DE.public.x}, "ncb-answer+jwt"),
        ("identity", {"d": b64url(mx.DE_SEED), "x": DE.public.x}, "ncb-identity+jwt"),
    ],
)
def test_joserfc_verifies_and_resigns(name: str, signer_jwk: dict[str, str], typ: str) -> None:
    signed = getattr(EX, name)
    private = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", **signer_jwk})
    public = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": signer_jwk["x"]})
    assert public.thumbprint() == signed.header["kid"]
    decoded = jwt.decode(signed.token.decode("ascii"), public, algorithms=["EdDSA", "Ed25519"])
    assert decoded.header == {"alg": "EdDSA", "kid": public.thumbprint(), "typ": typ}
    assert decoded.claims == signed.claims
    again = jws.serialize_compact(signed.header, signed.payload_json, private, algorithms=["EdDSA"])
    assert again.encode("ascii") == signed.token
    assert b64url(jws.deserialize_compact(again, public, algorithms=["EdDSA"]).payload) == b64url(
        signed.payload_json
    )


@pytest.mark.usefixtures("no_joserfc_warnings")
def test_joserfc_ed25519_alg_is_accepted() -> None:
    """RFC 9864's fully-specified name signs the same way and must be accepted too."""
    private = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "d": mx.FR_D, "x": mx.FR_X})
    header = {"alg": "Ed25519", "kid": FR.kid, "typ": "ncb-query+jwt"}
    token = jws.serialize_compact(header, EX.query.payload_json, private, algorithms=["Ed25519"])
    assert parse_query(_open(token.encode("ascii"))).jti == _query().jti


# --- the order of §10, on variations of the example ------------------------------------------


def _claims(**over: Any) -> dict[str, Any]:
    return {**EX.query.claims, **over}


def _sign(
    claims: dict[str, Any] | bytes,
    *,
    typ: str = "ncb-query+jwt",
    signer: Signer = FR,
    header: dict[str, Any] | None = None,
) -> bytes:
    payload = claims if isinstance(claims, bytes) else orjson.dumps(claims)
    return signer.sign_compact(payload, typ=typ, header=header)


def _refusal(token: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_query(_open(token))
    return info.value


CASES: list[tuple[str, bytes, int, str]] = [
    ("too large", b"A" * (64 * 1024 + 1), 413, "payload_too_large"),
    ("not a JWS", b"hello", 400, "malformed_token"),
    (
        "crit",
        _sign(
            _claims(),
            header={"alg": "EdDSA", "kid": FR.kid, "typ": "ncb-query+jwt", "crit": ["exp"]},
        ),
        400,
        "malformed_token",
    ),
    (
        "alg none",
        b64url(b'{"alg":"none"}').encode() + b"." + QUERY_TOKEN.split(b".")[1] + b".",
        400,
        "malformed_token",
    ),
    (
        "no kid",
        _sign(_claims(), header={"alg": "EdDSA", "typ": "ncb-query+jwt"}),
        401,
        "unknown_key",
    ),
    (
        "unknown kid",
        _sign(_claims(), signer=Signer(SigningKey(seed=bytes(32)))),
        401,
        "unknown_key",
    ),
    (
        "bad signature, before typ",
        QUERY_TOKEN.rsplit(b".", 1)[0] + b"." + b64url(bytes(64)).encode(),
        401,
        "bad_signature",
    ),
    ("answer typ, before aud", _sign(_claims(aud="GB"), typ="ncb-answer+jwt"), 400, "wrong_type"),
    ("payload not JSON", _sign(b"not json"), 400, "malformed_token"),
    ("iss not the kid's peer", _sign(_claims(iss="DE")), 401, "unknown_key"),
    ("aud array", _sign(_claims(aud=["DE"])), 403, "wrong_audience"),
    ("wrong aud, before time", _sign(_claims(aud="GB", exp=IAT - 100)), 403, "wrong_audience"),
    ("fractional iat", _sign(_claims(iat=IAT + 0.5)), 422, "invalid_claims"),
    ("lifetime over 120 s", _sign(_claims(exp=IAT + 121)), 401, "stale_token"),
    ("future iat", _sign(_claims(iat=IAT + 31, exp=IAT + 60)), 401, "stale_token"),
    ("short jti, before schema", _sign(_claims(jti="short", sub="")), 422, "invalid_claims"),
    ("nbf is an unknown claim", _sign(_claims(nbf=IAT)), 422, "invalid_claims"),
    (
        "limit 0",
        _sign(_claims(checks=[{**EX.query.claims["checks"][0], "limit": 0}])),
        422,
        "invalid_claims",
    ),
    (
        "duplicate check ids",
        _sign(_claims(checks=[EX.query.claims["checks"][0]] * 2)),
        422,
        "invalid_claims",
    ),
]


@pytest.mark.parametrize(
    ("token", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refusals_in_the_documented_order(token: bytes, status: int, code: str) -> None:
    error = _refusal(token)
    assert (error.status, error.code) == (status, code)
    assert error.type_uri == f"https://ncb-connector.org/problems/{code}"
    assert f"| `{status}` | `{code}` |" in _doc()


def test_bad_mrz_check_digit_names_the_field() -> None:
    mrz = mx.MRZ[:-1] + ("5" if mx.MRZ[-1] != "5" else "6")
    with pytest.raises(InvalidCriteria) as info:
        parse_criteria(Category.TRAVEL_DOCUMENTS, {"mrz": mrz})
    assert (info.value.status, info.value.code, info.value.field) == (
        422,
        "invalid_criteria",
        "mrz.composite_check_digit",
    )


def test_problem_example_is_what_the_code_says() -> None:
    with pytest.raises(errors.StaleToken) as info:
        check_window(EX.query.claims, now=1790000091)
    text = json.dumps(info.value.problem("/v1/query"), indent=2)
    assert "<!-- problem example -->\n```json\n" + text + "\n```" in _doc()


def _codes(cls: type[ConnectorError]) -> set[str]:
    return {cls.code}.union(*(_codes(sub) for sub in cls.__subclasses__()))


def test_every_documented_problem_code_exists() -> None:
    documented = set(re.findall(r"\| `(\d{3})` \| `([a-z_]+)` \|", _doc()))
    assert documented, "the table of §10 was not found"
    known = _codes(ConnectorError)
    for _status, code in documented:
        assert code in known, code


def test_jti_is_the_millisecond_then_128_random_bits() -> None:
    """As protocol.md §5.1 says this implementation sends it: 30 base64url characters, the
    first 6 bytes the issuing millisecond, and no two alike."""
    now = 1_790_000_000.123
    jtis = {protocol.new_jti(now) for _ in range(1000)}
    assert len(jtis) == 1000
    for jti in jtis:
        assert re.fullmatch(r"[A-Za-z0-9_-]{30}", jti)
        raw = b64url_decode(jti)
        assert len(raw) == 22
        assert int.from_bytes(raw[:6], "big") == 1_790_000_000_123
    # A receiver's (iss, jti) index sees ids of one moment side by side.
    assert len({jti[:6] for jti in jtis}) == 1


def _witness_examples() -> dict[str, dict[str, Any]]:
    found = re.findall(r"<!-- witness example: (\w+) -->\n```json\n(.+?)\n```", _doc(), re.S)
    return {name: json.loads(text) for name, text in found}


def test_witness_examples_are_what_the_code_signs_and_accepts() -> None:
    """§13's claims examples parse with the models the witness uses, and name exactly the
    claims the connector puts in its own checkpoint, receipt and witnessed tokens."""
    examples = _witness_examples()
    assert set(examples) == {"checkpoint", "receipt", "witnessed"}
    signer = Signer(SigningKey.generate())
    now = 1_790_000_000
    checkpoint = protocol.checkpoint_claims(examples["checkpoint"])
    made = protocol.sign_checkpoint(
        signer, node="FR", seq=checkpoint.seq, head=checkpoint.hash, at=now, aud="DE"
    )
    kept = protocol.open_checkpoint(made, keys=[signer.public], node="FR")
    made_claims = orjson.loads(parse_compact(made.encode()).payload)
    assert set(made_claims) == set(examples["checkpoint"])
    receipt = protocol.ReceiptClaims.model_validate(examples["receipt"])
    signed = protocol.sign_receipt(
        signer, iss="DE", aud="FR", in_reply_to=receipt.in_reply_to, kept=kept, latest=kept, now=now
    )
    assert set(orjson.loads(parse_compact(signed).payload)) == set(examples["receipt"])
    witnessed = protocol.WitnessedClaims.model_validate(examples["witnessed"])
    signed = protocol.sign_witnessed(
        signer, iss="DE", aud="FR", in_reply_to=witnessed.in_reply_to, checkpoints=[made], now=now
    )
    assert set(orjson.loads(parse_compact(signed).payload)) == set(examples["witnessed"])
