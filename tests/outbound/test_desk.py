"""One way to ask: one peer is a fan-out of one; what a person types becomes a request."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from connector.demo import DemoNode
from connector.enquiries.entry import Entry
from connector.errors import InvalidCriteria, InvalidRequest, NotFound, OutboundDenied
from connector.outbound.desk import ask_peer, search_peers, typed_check
from connector.outbound.plan import plan
from connector.outbound.request import Request
from connector.outbound.subject import Subject, subject_fields
from connector.protocol import Check
from connector.server.local_checks import ChecksIn, SubjectIn
from connector.vocabulary import AgencyKind, Category, Purpose


def _request(agency: str = "ncb", *checks: Check) -> Request:
    return Request(
        agency=agency,
        agency_kind=AgencyKind.NCB,
        sub="ncb/test",
        purpose=Purpose.BORDER_CONTROL,
        case=None,
        checks=checks
        or (
            Check(
                id="c1",
                category=Category.TRAVEL_DOCUMENTS,
                criteria={"number": "DE1234567", "country": "DE"},
            ),
        ),
    )


def _out_rows(node: DemoNode) -> list[Entry]:
    log = node.node.open_enquiry_log()
    try:
        return [r.entry for r in log.list(direction="out")]
    finally:
        log.close()


async def test_one_peer_is_a_fan_out_of_one(pair: dict[str, DemoNode]) -> None:
    """The answer of one peer comes out of the fan-out whole, verified and logged once."""
    fr = pair["FR"]
    async with fr.node.desk() as desk:
        exchange = await desk.ask(_request(), "DE")
        (p,) = plan(desk.policy(), _request(), ["DE"])
        outcomes = [
            o
            async for o in desk.fanout.run(
                _request(),
                (p,),
                trust=desk.trust(),
                policy_digest=desk.policy().digest,
                deadline_s=2.0,
            )
        ]
    assert exchange.answer.results[0].status == "hit"
    (outcome,) = outcomes
    assert outcome.exchange is not None
    assert outcome.exchange.answer.results[0].status == "hit"
    assert outcome.error is None
    rows = _out_rows(fr)
    assert [(r.peer, r.decision) for r in rows] == [("DE", "answered")] * 2
    assert rows[0].jti == exchange.query.jti
    assert outcome.log_id == rows[1].id


async def test_one_peer_refused_before_anything_is_sent(pair: dict[str, DemoNode]) -> None:
    fr = pair["FR"]
    person = Check(id="p", category=Category.WANTED_PERSONS, criteria={"last_name": "Doe"})
    async with fr.node.desk() as desk:
        with pytest.raises(NotFound, match="XX is not in the trust store"):
            await desk.ask(_request(), "XX")
        # All or nothing: the demo's outbound rule allows documents, not persons.
        with pytest.raises(OutboundDenied, match="about wanted_persons for border_control"):
            await desk.ask(_request("ncb", *_request().checks, person), "DE")
    assert _out_rows(fr) == []


def test_typed_check_makes_and_refuses_what_query_was_given() -> None:
    doc = typed_check(
        Category.TRAVEL_DOCUMENTS,
        criteria=None,
        mrz=None,
        document_number="C01X00T47",
        document_country="de",
        document_type="P",
    )
    assert dict(doc.criteria) == {
        "document_number": "C01X00T47",
        "document_country": "DE",
        "document_type": "P",
    }
    vin = {"vin": "1M8GDM9AXKP042788"}
    given = typed_check(
        Category.VEHICLES,
        criteria=vin,
        mrz=None,
        document_number=None,
        document_country=None,
        document_type=None,
    )
    assert (given.id, dict(given.criteria)) == ("1", vin)
    for category, criteria, number, message in [
        (Category.TRAVEL_DOCUMENTS, vin, "X1", "not both"),
        (Category.VEHICLES, None, None, "vehicles: give --criteria JSON"),
        (Category.TRAVEL_DOCUMENTS, None, None, "give either --document-number"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            typed_check(
                category,
                criteria=criteria,
                mrz=None,
                document_number=number,
                document_country=None,
                document_type=None,
            )
    with pytest.raises(InvalidCriteria) as bad:
        typed_check(
            Category.VEHICLES,
            criteria={"vin": "1M8GDM9A1KP042788"},
            mrz=None,
            document_number=None,
            document_country=None,
            document_type=None,
        )
    assert bad.value.extra["field"] == "vin"


async def test_typed_input_is_refused_before_the_desk_opens() -> None:
    def never() -> object:
        raise AssertionError("the desk was opened")

    common = {
        "agency": "ncb",
        "agency_kind": AgencyKind.NCB,
        "sub": "ncb/1",
        "purpose": Purpose.BORDER_CONTROL,
        "case": None,
    }
    with pytest.raises(InvalidRequest):
        await ask_peer(
            never,  # type: ignore[arg-type]
            peer="DE",
            category=Category.TRAVEL_DOCUMENTS,
            criteria=None,
            **common,  # type: ignore[arg-type]
        )
    with pytest.raises(InvalidRequest, match="give something to check"):
        await search_peers(
            never,  # type: ignore[arg-type]
            subject=Subject(birth_date="1964"),
            peers="*",
            deadline_ms=None,
            on_update=lambda prepared, outcomes: None,
            **common,  # type: ignore[arg-type]
        )


def test_the_subject_is_written_once() -> None:
    """The local API's `subject` and the options of `search` are the fields of Subject, by
    the names the OpenAPI file and the docs give them."""
    from connector.cli.search import search

    names = [f.name for f in subject_fields()]
    assert names == list(Subject.__dataclass_fields__)
    assert list(SubjectIn.model_fields) == names
    text = resources.files("connector").joinpath("data/local-api.openapi.yaml").read_text()
    openapi = yaml.safe_load(text)
    assert list(openapi["components"]["schemas"]["Subject"]["properties"]) == names
    options = {p.name: p.opts for p in search.params}
    assert [options[f.name] for f in subject_fields()] == [[f.option] for f in subject_fields()]
    # One name on every surface: the option is the field's name with dashes.
    assert [f.option for f in subject_fields()] == ["--" + n.replace("_", "-") for n in names]
    # The options' old spellings are still taken, and not shown.
    hidden = {p.opts[0] for p in search.params if getattr(p, "hidden", False)}
    assert hidden == {"--number", "--country", "--type", "--dna"}
    body = ChecksIn.model_validate(
        {"purpose": "border_control", "sub": "1", "subject": {"plate": "AB-123-CD"}}
    )
    assert body.subject is not None
    assert Subject(**body.subject.model_dump()) == Subject(plate="AB-123-CD")
