"""Fingerprints: ISO/IEC 19794-2 records read field by field (2005 and 2011, bytes laid out
by hand from the standard's tables), refusals by line, bozorth3 through the binding, and
1:N search through the store narrowed by finger position without losing a mate."""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Iterator
from dataclasses import replace

import orjson
import pytest
from support.databases import DatabaseUrl

from connector.errors import InvalidCriteria
from connector.records.fingerprints.iso19794 import (
    FingerView,
    Minutia,
    TemplateError,
    read_template,
    usable,
    write_2005,
    write_2011,
)
from connector.records.fingerprints.matcher import Bozorth3, binding_layout
from connector.records.fingerprints.synthetic import Distortion, finger, impression
from connector.records.importer import import_stream
from connector.records.kinds.biometrics import Fingerprints, finger_keys
from connector.records.store import RecordStore
from connector.settings.config import FingerprintMatching, Matching
from connector.vocabulary import Category

KIND = Fingerprints()

# ISO/IEC 19794-2:2005: a 24-byte record header, a 4-byte finger view header, 6 bytes a
# minutia, a 2-byte extended data length. Two minutiae: a ridge ending at (100, 200), 90°
# (64 × 360/256), quality 60; a bifurcation at (300, 10), 0°, quality 80.


def _hand_2005() -> bytes:
    header = bytes.fromhex(
        "464d5200"  # format identifier "FMR\0"
        "20323000"  # version " 20\0"
        "0000002a"  # record length 42 = 24 + 4 + 12 + 2
        "0000"  # capture equipment certification (4 bits) and device type (12 bits)
        "0190"  # image width 400
        "01f4"  # image height 500
        "00c5"  # horizontal resolution 197 pixels/cm (500 ppi)
        "00c5"  # vertical resolution
        "01"  # one finger view
        "00"  # reserved
    )
    view = bytes.fromhex(
        "02"  # finger position 2: right index
        "01"  # view number 0 (high nibble), impression type 1 (rolled)
        "4b"  # finger quality 75
        "02"  # two minutiae
        "4064"
        "00c8"
        "40"
        "3c"  # type 01 + x 100; y 200; angle 64; quality 60
        "812c"
        "000a"
        "00"
        "50"  # type 10 + x 300; y 10; angle 0; quality 80
        "0000"  # no extended data
    )
    return header + view


def _hand_2011() -> bytes:
    rep = bytes.fromhex(
        "00000033"  # representation length 51: 37 bytes of fields, 2 × 6 of minutiae, 2
        "ffffffffffffffffff"  # capture date and time: not given
        "00"
        "0000"
        "0000"  # device technology, vendor, type
        "01"
        "32"
        "0000"
        "0000"  # one quality block: 50, vendor 0, algorithm 0
        "07"  # finger position 7: left index
        "00"  # representation number
        "00c5"
        "00c5"  # resolutions
        "00"  # impression: live-scan plain
        "0190"
        "01f4"  # 400 × 500
        "60"  # 6-byte minutiae (high nibble), ridge ending type 0
        "02"  # two minutiae
        "4064"
        "00c8"
        "40"
        "3c"
        "812c"
        "000a"
        "00"
        "50"
        "0000"  # no extended data
    )
    header = bytes.fromhex("464d520030333000") + (15 + len(rep)).to_bytes(4, "big")
    header += bytes.fromhex("000100")  # one representation, no certification
    return header + rep


TWO = (
    Minutia(x=100, y=200, angle=64, type="ridge_ending", quality=60),
    Minutia(x=300, y=10, angle=0, type="bifurcation", quality=80),
)


def test_a_2005_record_reads_field_by_field() -> None:
    template = read_template(_hand_2005())
    assert template.version == "2005"
    (view,) = template.views
    assert (view.finger, view.impression, view.view, view.quality) == (2, 1, 0, 75)
    assert (view.width, view.height, view.resolution_x, view.resolution_y) == (400, 500, 197, 197)
    assert view.minutiae == TWO
    assert view.minutiae[0].degrees == 90.0
    # The writer lays out the same bytes.
    assert write_2005([view]) == _hand_2005()


def test_a_2011_record_reads_field_by_field() -> None:
    template = read_template(_hand_2011())
    assert template.version == "2011"
    (view,) = template.views
    assert (view.finger, view.width, view.height, view.impression) == (7, 400, 500, 0)
    assert view.minutiae == TWO
    again = read_template(write_2011([view]))
    assert again.views[0].minutiae == TWO


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"ANSI" + _hand_2005()[4:], "does not begin with 'FMR"),
        (_hand_2005()[:4] + b" 21\x00" + _hand_2005()[8:], "neither 2005"),
        (_hand_2005()[:-3], "record length says 42 bytes, the record has 39"),
        (_hand_2005()[:8] + (38).to_bytes(4, "big") + _hand_2005()[12:38], "inside minutia 2"),
        (_hand_2005() + b"\x00", "says 42 bytes, the record has 43"),
        (_hand_2011()[:-1], "record length says"),
        # A minutia of type 3 (both type bits set).
        (_hand_2005()[:28] + b"\xc0" + _hand_2005()[29:], "type 3 is not a minutia type"),
        # Finger position 13 (a plain four-finger slap): not one finger.
        (_hand_2005()[:24] + b"\x0d" + _hand_2005()[25:], "not a single finger"),
    ],
)
def test_records_that_do_not_read_say_why(data: bytes, words: str) -> None:
    with pytest.raises(TemplateError, match=words):
        read_template(data)


def test_too_few_minutiae_are_refused() -> None:
    with pytest.raises(TemplateError, match="has 2 minutiae: at least 12"):
        usable(read_template(_hand_2005()))


def _b64(view: FingerView, *, year: str = "2005") -> str:
    data = write_2005([view]) if year == "2005" else write_2011([view])
    return base64.b64encode(data).decode()


def test_bozorth3_scores_mates_above_strangers() -> None:
    rng = random.Random(7)
    matcher = Bozorth3()
    a, b = finger(rng), finger(rng)
    one = matcher.prepare(impression(rng, a, Distortion()))
    mate = matcher.prepare(impression(rng, a, Distortion()))
    stranger = matcher.prepare(impression(rng, b, Distortion()))
    assert matcher.score(one, one) > 40
    assert matcher.score(one, mate) > 10 > matcher.score(one, stranger)


def test_the_binding_gets_every_minutia_at_500_ppi() -> None:
    """The binding's own reader misreads a standard record (it takes byte 25, the view and
    impression byte, for the minutiae count): it is handed the minutiae in the layout it
    reads, scaled to 500 pixels an inch."""
    view = read_template(_hand_2005()).views[0]
    misread = Bozorth3()._extractor.load_iso_19794_2_2005(write_2005([view])).get()
    assert [(m.x(), m.y()) for m in misread] != [(100, 200), (300, 10)]
    coarse = FingerView(finger=2, minutiae=TWO, width=400, height=500, resolution_x=394)
    loaded = Bozorth3()._extractor.load_iso_19794_2_2005(binding_layout(coarse)).get()
    assert sorted((m.x(), m.y()) for m in loaded) == [(50, 200), (150, 10)]


def test_import_refuses_by_line(db_url: DatabaseUrl) -> None:
    rng = random.Random(3)
    good = finger(rng, finger_position=3)
    store = RecordStore.open(db_url("fp-import"))
    try:
        rows = [
            {"id": "F-1", "template": _b64(good)},
            {"id": "F-2", "template": base64.b64encode(_hand_2005()).decode()},
            {"id": "F-3", "template": "not base64 at all!"},
            {"id": "F-4", "template": _b64(good, year="2011"), "finger": 4},
            {"id": "F-5", "template": _b64(good, year="2011"), "finger": 3},
        ]
        data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
        report = import_stream(
            store, io.BytesIO(data), category=Category.FINGERPRINTS, fmt="ndjson"
        )
        assert (report.inserted, report.rejected) == (2, 3)
        assert [e.line for e in report.errors] == [2, 3, 4]
        assert "has 2 minutiae: at least 12" in report.errors[0].reason
        assert "not base64" in report.errors[1].reason
        assert "finger: 4 (right ring), but the template's view is finger 3" in (
            report.errors[2].reason
        )
        held = store.get(Category.FINGERPRINTS, "F-1")
        assert held is not None
        assert held.fields["finger"] == 3
    finally:
        store.close()


def test_criteria_errors_name_the_field() -> None:
    rng = random.Random(4)
    view = finger(rng, finger_position=2)
    with pytest.raises(InvalidCriteria) as short:
        KIND.parse_criteria({"template": base64.b64encode(_hand_2005()).decode()})
    assert short.value.field == "template"
    with pytest.raises(InvalidCriteria) as other:
        KIND.parse_criteria({"template": _b64(view), "finger": 5})
    assert other.value.field == "finger"
    with pytest.raises(InvalidCriteria) as unknown:
        KIND.parse_criteria({"template": _b64(view), "pattern": "whorl"})
    assert unknown.value.field == "pattern"


def test_finger_keys_keep_prints_of_unknown_finger() -> None:
    rng = random.Random(5)
    assert finger_keys([finger(rng, finger_position=2)]) == ("f:2", "f:0")
    assert finger_keys([finger(rng, finger_position=0)]) == ("f:*",)


@pytest.fixture
def fp_store(db_url: DatabaseUrl) -> Iterator[RecordStore]:
    store = RecordStore.open(db_url("fp"))
    yield store
    store.close()


def test_search_ranks_mates_and_narrows_by_finger_without_losing_one(
    fp_store: RecordStore,
) -> None:
    rng = random.Random(11)
    mild = Distortion(rotation=5, shift=10, elastic=0, jitter=1, angle_jitter=1, drop=0.05)
    fingers = [finger(rng, finger_position=1 + i % 10) for i in range(60)]
    rows = [
        {"id": f"F-{i}", "template": _b64(impression(rng, f, mild))} for i, f in enumerate(fingers)
    ]
    # The mate of finger 0 held once more with its finger unknown: found from any finger.
    unknown = impression(rng, fingers[0], mild)
    rows.append({"id": "F-unknown", "template": _b64(replace(unknown, finger=0))})
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    import_stream(fp_store, io.BytesIO(data), category=Category.FINGERPRINTS, fmt="ndjson")

    probe = impression(rng, fingers[0], mild)
    criteria = KIND.parse_criteria({"template": _b64(probe, year="2011")})
    narrowed = fp_store.search_now(Category.FINGERPRINTS, criteria, 10)
    assert {m.record.id for m in narrowed} >= {"F-0", "F-unknown"}
    assert all(m.record.fields["finger"] in (0, 1) for m in narrowed)
    (first, *rest) = narrowed
    assert all(first.score >= m.score for m in rest)
    (reason,) = first.reasons or ()
    assert reason["verification_required"] is True
    assert reason["bozorth3"] >= criteria.threshold
    # Unknown finger in the check: every print compared, the mates still first.
    anywhere = KIND.parse_criteria({"template": _b64(probe), "finger": 0})
    found = fp_store.search_now(Category.FINGERPRINTS, anywhere, 10)
    assert {m.record.id for m in found} >= {"F-0", "F-unknown"}
    # The node's threshold decides (Kind.at_node): none reach 1000.
    strict = Matching(fingerprints=FingerprintMatching(threshold=1000))
    assert fp_store.search_now(Category.FINGERPRINTS, KIND.at_node(criteria, strict), 10) == []


async def test_a_running_node_scores_prints_off_its_event_loop(fp_store: RecordStore) -> None:
    """bozorth3 runs in a worker thread: the loop keeps serving while a 1:N search compares."""
    import asyncio

    rng = random.Random(13)
    rows = [{"id": f"F-{i}", "template": _b64(finger(rng, finger_position=2))} for i in range(400)]
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    import_stream(fp_store, io.BytesIO(data), category=Category.FINGERPRINTS, fmt="ndjson")
    criteria = KIND.parse_criteria({"template": _b64(finger(rng, finger_position=0))})
    ticks = 0
    searching = True

    async def ticker() -> None:
        nonlocal ticks
        while searching:
            ticks += 1
            await asyncio.sleep(0)

    beat = asyncio.create_task(ticker())
    try:
        await fp_store.search(Category.FINGERPRINTS, criteria, 10)
    finally:
        searching = False
        await beat
    assert ticks > 10  # on the loop the search would have let the ticker run once at most
