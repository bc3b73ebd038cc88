"""Fingerprint images made after SFinGe, extracted by mindtct on this node and compared by
bozorth3: minutiae are found, NFIQ 2 scores the image, impressions of one finger match and
different fingers do not; bad images are refused with their reason."""

from __future__ import annotations

import base64
import io
import itertools

import orjson
import pytest
from support.databases import DatabaseUrl

from bench._fingerprint_images import Pressing, impression, master, png
from connector.records.fingerprints.extraction import (
    MAX_IMAGE_BYTES,
    Extracted,
    ImageError,
    Mindtct,
    decode_image,
)
from connector.records.fingerprints.iso19794 import read_template
from connector.records.fingerprints.matcher import Bozorth3
from connector.records.importer import import_stream
from connector.records.kinds.biometrics import Fingerprints
from connector.records.store import RecordStore
from connector.settings.config import FingerprintMatching, Matching
from connector.vocabulary import Category

FINGERS = 4
IMAGE_THRESHOLD = 40
"""NBIS's own guide to a likely match: image-extracted prints hold 80-120 minutiae, and
impostor pairs of them score up to about 30 (docs/benchmarks.md)."""


@pytest.fixture(scope="module")
def images() -> dict[tuple[int, int], bytes]:
    """Two impressions of each finger: a plain one, and one turned, moved, warped and dry."""
    out: dict[tuple[int, int], bytes] = {}
    for f in range(FINGERS):
        finger = master(500 + f)
        out[f, 0] = impression(finger, Pressing(), seed=f)
        out[f, 1] = impression(
            finger,
            Pressing(rotation=12.0, shift=(15.0, -10.0), elastic=4.0, dryness=0.4, noise=10.0),
            seed=100 + f,
        )
    return out


@pytest.fixture(scope="module")
def extracted(images: dict[tuple[int, int], bytes]) -> dict[tuple[int, int], Extracted]:
    mindtct = Mindtct()
    return {k: mindtct.extract(png_bytes, finger=2) for k, png_bytes in images.items()}


def test_mindtct_finds_minutiae_and_nfiq2_scores_the_image(
    extracted: dict[tuple[int, int], Extracted],
) -> None:
    for e in extracted.values():
        assert len(e.view.minutiae) >= 30
        assert e.nfiq2 is not None
        assert 20 <= e.nfiq2 <= 100
        # The record is the project's ISO/IEC 19794-2:2005, read back as written.
        (view,) = read_template(e.record).views
        assert view.finger == 2
        assert view.minutiae == e.view.minutiae
        assert view.quality == e.nfiq2


def test_same_finger_matches_and_different_fingers_do_not(
    extracted: dict[tuple[int, int], Extracted],
) -> None:
    bozorth3 = Bozorth3()
    prepared = {k: bozorth3.prepare(e.view) for k, e in extracted.items()}
    genuine = [bozorth3.score(prepared[f, 0], prepared[f, 1]) for f in range(FINGERS)]
    impostor = [
        bozorth3.score(prepared[f, 0], prepared[g, 1])
        for f, g in itertools.permutations(range(FINGERS), 2)
    ]
    assert len(impostor) == 12
    assert min(genuine) >= IMAGE_THRESHOLD, genuine
    assert max(impostor) < IMAGE_THRESHOLD, impostor


def test_images_that_give_no_template_are_refused_with_the_reason() -> None:
    import numpy as np

    mindtct = Mindtct()
    with pytest.raises(ImageError, match="not a PNG"):
        mindtct.extract(b"GIF89a" + bytes(100))
    with pytest.raises(ImageError, match="width is 50 pixels"):
        mindtct.extract(png(np.full((200, 50), 255, dtype=np.uint8)))
    with pytest.raises(ImageError, match=f"at most {MAX_IMAGE_BYTES}"):
        mindtct.extract(b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES))
    with pytest.raises(ImageError, match="0 minutiae found in the image: at least 12"):
        mindtct.extract(png(np.full((300, 300), 255, dtype=np.uint8)))
    header = b"\x00\x00\x00\x0dIHDR" + bytes.fromhex("0000012c0000012c0800000000")
    with pytest.raises(ImageError, match="could not be read"):
        mindtct.extract(b"\x89PNG\r\n\x1a\n" + header + b"not deflated" * 10)
    with pytest.raises(ImageError, match="not base64"):
        decode_image("not an image!")
    text = base64.b64encode(b"\x89PNG").decode()
    assert decode_image(text) == b"\x89PNG"


def test_import_extracts_images_keeps_nfiq2_and_refuses_by_line(
    db_url: DatabaseUrl, images: dict[tuple[int, int], bytes]
) -> None:
    import numpy as np

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    blank = png(np.full((300, 300), 255, dtype=np.uint8))
    rows = [
        *({"id": f"F-{f}", "finger": 2, "image": b64(images[f, 0])} for f in range(FINGERS)),
        {"id": "F-blank", "image": b64(blank)},
        {"id": "F-text", "image": "not an image!"},
        {"id": "F-none", "finger": 2},
    ]
    store = RecordStore.open(db_url("fp-images"))
    try:
        data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
        report = import_stream(
            store, io.BytesIO(data), category=Category.FINGERPRINTS, fmt="ndjson"
        )
        assert (report.inserted, report.rejected) == (FINGERS, 3)
        reasons = {e.line: e.reason for e in report.errors}
        assert "image: 0 minutiae found in the image: at least 12" in reasons[FINGERS + 1]
        assert "image: not base64" in reasons[FINGERS + 2]
        assert "give a template or an image" in reasons[FINGERS + 3]
        held = store.get(Category.FINGERPRINTS, "F-0")
        assert held is not None
        assert "image" not in held.fields
        assert isinstance(held.fields["nfiq2"], int)
        (view,) = read_template(base64.b64decode(held.fields["template"])).views
        assert view.quality == held.fields["nfiq2"]
        # Another impression of finger 1, extracted the same way, finds its mate first.
        probe = Mindtct().extract(images[1, 1], finger=2)
        kind = Fingerprints()
        at_40 = Matching(fingerprints=FingerprintMatching(threshold=IMAGE_THRESHOLD))
        criteria = kind.at_node(kind.parse_criteria({"template": probe.template}), at_40)
        found = store.search_now(Category.FINGERPRINTS, criteria, 10)
        assert [m.record.id for m in found] == ["F-1"]
    finally:
        store.close()


def test_an_image_row_near_the_size_limit_fits_an_import_line(db_url: DatabaseUrl) -> None:
    """A 900 kB PNG (noise: it does not compress) is 1.2 MB of base64, over a mebibyte: the
    line is read whole and the row judged on its image, not cut off as too long."""
    import numpy as np

    noise = np.random.default_rng(1).integers(0, 256, size=(950, 950), dtype=np.uint8)
    image = png(noise)
    assert 850_000 < len(image) < MAX_IMAGE_BYTES
    row = {"id": "F-big", "image": base64.b64encode(image).decode("ascii")}
    store = RecordStore.open(db_url("fp-big"))
    try:
        report = import_stream(
            store,
            io.BytesIO(orjson.dumps(row) + b"\n"),
            category=Category.FINGERPRINTS,
            fmt="ndjson",
        )
    finally:
        store.close()
    assert report.lines == 1
    for error in report.errors:
        assert error.reason.startswith("image:"), error.reason
