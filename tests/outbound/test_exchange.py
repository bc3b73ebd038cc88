"""Two and three nodes over TLS with pinned fingerprints answer each other: hit, no-hit, denied."""

from __future__ import annotations

import pytest

from connector.demo import DemoNode, _mrz_td3
from connector.errors import OutboundDenied, PeerUnreachable
from connector.outbound.request import Request
from connector.peers.trust import Peer, TrustStore, save_trust_store
from connector.protocol import Check
from connector.vocabulary import AgencyKind, Category, Purpose


def _request(
    criteria: dict[str, str | int | bool],
    purpose: Purpose = Purpose.BORDER_CONTROL,
    agency: str = "ncb",
) -> Request:
    return Request(
        agency=agency,
        agency_kind=AgencyKind.NCB,
        sub="ncb/test",
        purpose=purpose,
        case=None,
        checks=(Check(id="c1", category=Category.TRAVEL_DOCUMENTS, criteria=criteria),),
    )


async def _ask(net: dict[str, DemoNode], src: str, dst: str, request: Request):  # type: ignore[no-untyped-def]
    async with net[src].node.desk() as desk:
        return await desk.ask(request, dst)


async def test_hit_full_level_with_redaction(pair: dict[str, DemoNode]) -> None:
    ex = await _ask(pair, "FR", "DE", _request({"number": "DE 123-4567", "country": "DE"}))
    (result,) = ex.answer.results
    assert result.status == "hit"
    assert result.level.value == "full"
    (hit,) = result.hits
    assert hit.ref == "DE:travel_documents:DE-TD-26-0117"
    assert hit.record["status"] == "stolen"
    assert hit.record["holder_name"] == "Jean Exemple"
    assert "remarks" not in hit.record  # the demo rule redacts remarks


async def test_no_hit(pair: dict[str, DemoNode]) -> None:
    ex = await _ask(pair, "FR", "DE", _request({"number": "DE9999999", "country": "DE"}))
    assert [r.status for r in ex.answer.results] == ["no_hit"]
    assert ex.answer.results[0].hits == []


async def test_mrz_check_hits(pair: dict[str, DemoNode]) -> None:
    mrz = _mrz_td3("DE1234567", "D<<", "EXEMPLE", "JEAN")
    ex = await _ask(pair, "FR", "DE", _request({"mrz": mrz}))
    assert ex.answer.results[0].status == "hit"


async def test_o_for_zero_tolerated(pair: dict[str, DemoNode]) -> None:
    ex = await _ask(pair, "DE", "FR", _request({"number": "fr-OOOO042", "country": "FR"}))
    assert ex.answer.results[0].status == "hit"


async def test_denied_by_policy_is_a_signed_answer(trio: dict[str, DemoNode]) -> None:
    ex = await _ask(trio, "GB", "DE", _request({"number": "DE1234567", "country": "DE"}))
    (result,) = ex.answer.results
    assert result.status == "denied"
    assert result.hits == []
    assert result.level.value == "none"
    de_log = trio["DE"].node.open_enquiry_log()
    try:
        (row,) = de_log.list(peer="GB")
    finally:
        de_log.close()
    assert row.entry.decision == "denied"
    assert row.entry.rules == ("(default deny)",)


async def test_summary_level_hides_holder(trio: dict[str, DemoNode]) -> None:
    ex = await _ask(
        trio,
        "GB",
        "DE",
        _request({"number": "DE0000042", "country": "DE"}, Purpose.CRIMINAL_INVESTIGATION),
    )
    (hit,) = ex.answer.results[0].hits
    assert ex.answer.results[0].level.value == "summary"
    assert set(hit.record) == {
        "document_number",
        "document_country",
        "document_type",
        "status",
        "reported_on",
    }


async def test_both_sides_log_the_enquiry(pair: dict[str, DemoNode]) -> None:
    ex = await _ask(pair, "FR", "DE", _request({"number": "DE1234567", "country": "DE"}))
    fr_log, de_log = pair["FR"].node.open_enquiry_log(), pair["DE"].node.open_enquiry_log()
    try:
        (out_row,) = fr_log.list(direction="out")
        (in_row,) = de_log.list(direction="in")
    finally:
        fr_log.close()
        de_log.close()
    assert out_row.entry.jti == in_row.entry.jti == ex.query.jti
    assert in_row.entry.id == ex.answer.enquiry
    assert out_row.entry.results[0]["peer_enquiry"] == ex.answer.enquiry
    ref = "DE:travel_documents:DE-TD-26-0117"
    assert in_row.entry.hit_refs == out_row.entry.hit_refs == (ref,)
    assert in_row.entry.policy_digest is not None
    assert in_row.entry.policy_digest.startswith("sha256:")
    assert in_row.entry.rules == ("stolen documents for Schengen border checks",)


async def test_outbound_policy_refuses_unknown_agency(pair: dict[str, DemoNode]) -> None:
    with pytest.raises(OutboundDenied):
        await _ask(pair, "FR", "DE", _request({"number": "X1"}, agency="customs"))


async def test_wrong_tls_pin_is_unreachable(pair: dict[str, DemoNode]) -> None:
    fr = pair["FR"].node
    de_peer = fr.live.trust.peers["DE"]
    bad = Peer(id="DE", url=de_peer.url, keys=de_peer.keys, tls_fingerprint=":".join(["AB"] * 32))
    save_trust_store(fr.live.peers_file, TrustStore.of([bad]))
    fr.live.reload()
    with pytest.raises(PeerUnreachable, match="does not match the pin"):
        await _ask(pair, "FR", "DE", _request({"number": "DE1234567", "country": "DE"}))
    fr_log = fr.open_enquiry_log()
    try:
        (row,) = fr_log.list()
    finally:
        fr_log.close()
    assert row.entry.decision == "error"
    assert row.entry.error is not None
