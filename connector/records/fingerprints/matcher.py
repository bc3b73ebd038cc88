"""NIST bozorth3, as the nbis-py binding exposes it, fed with minutiae read by our own ISO
reader: the binding's own reader does not read ISO/IEC 19794-2 records (docs/records.md
§Fingerprints), so each view is handed over in the byte layout that reader does take."""

from __future__ import annotations

import base64
import binascii
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from connector.records.fingerprints.iso19794 import (
    STANDARD_PPCM,
    FingerView,
    TemplateError,
    read_template,
)

BOZORTH_MINUTIAE = 150
"""Minutiae bozorth3 compares of a print (NBIS's default): the best by quality are kept."""

_TYPE_CODE = {"other": 0, "ridge_ending": 1, "bifurcation": 2}


class Probe(Protocol):
    """What a check holds of its prints: the views, and a key naming them."""

    @property
    def views(self) -> tuple[FingerView, ...]: ...

    @property
    def key(self) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """A finger view as the matcher holds it, ready to compare many times."""

    finger: int
    minutiae: Any  # nbis.Minutiae


class Bozorth3:
    """Scores two finger views with NIST's bozorth3: 0 for unrelated prints, rising with the
    minutiae pairs that agree; NBIS calls scores above about 40 a likely match."""

    def __init__(self) -> None:
        self._made: Any = None
        self._lock = threading.Lock()
        self._comparing = threading.Lock()

    @property
    def _extractor(self) -> Any:
        # Made once, on first use or by `warm` in a worker thread at a node's start: the
        # binding loads its NFIQ 2 model here (0.3 s, over a second on a busy machine).
        if self._made is None:
            with self._lock:
                if self._made is None:
                    import nbis  # type: ignore[import-untyped]

                    self._made = nbis.new_nbis_extractor(
                        nbis.NbisExtractorSettings(
                            min_quality=0.0,
                            get_center=False,
                            check_fingerprint=False,
                            compute_nfiq2=False,
                            ppi=None,
                        )
                    )
        return self._made

    def warm(self) -> None:
        """Loads the binding before a check waits for it."""
        self._extractor  # noqa: B018

    def prepare(self, view: FingerView) -> Prepared:
        return Prepared(
            finger=view.finger, minutiae=self._extractor.load_iso_19794_2_2005(binding_layout(view))
        )

    def score(self, probe: Prepared, gallery: Prepared) -> int:
        # One comparison at a time: NBIS's bozorth3 works in static arrays, and searches
        # run in worker threads (the binding releases the GIL while it compares).
        with self._comparing:
            return int(probe.minutiae.compare(gallery.minutiae))


def binding_layout(view: FingerView) -> bytes:
    """The bytes nbis-py 0.1's `load_iso_19794_2_2005` reads, which are not the standard's:
    a 26-byte header with the minutiae count at byte 25 and no extended-data length (its
    Rust source, `encoding.rs`). Positions are scaled to 500 pixels an inch; the angle stays
    in the ISO unit (the binding rounds it to bozorth3's 11.25° directions)."""
    minutiae = sorted(view.minutiae, key=lambda m: -m.quality)[:BOZORTH_MINUTIAE]
    sx = STANDARD_PPCM / view.resolution_x
    sy = STANDARD_PPCM / view.resolution_y
    width = max(1, round(view.width * sx))
    height = max(1, round(view.height * sy))
    out = bytearray(b"FMR\x00 20\x00")
    out += struct.pack(">I", 26 + 6 * len(minutiae))
    out += b"\x00\x00" + struct.pack(">HH", min(width, 0xFFFF), min(height, 0xFFFF))
    out += bytes(7) + bytes([len(minutiae)])
    for m in minutiae:
        x = min(round(m.x * sx), 0x3FFF)
        y = min(round(m.y * sy), 0x3FFF)
        out += struct.pack(">HHBB", (_TYPE_CODE[m.type] << 14) | x, y, m.angle, m.quality)
    return bytes(out)


class PreparedCache:
    """Prepared views by the base64 text of their record, the most recently used kept: a
    1:N search compares one probe with every held print, and reading and handing over a
    print costs about as much as comparing it, so held prints stay prepared between
    searches. Bounded: each costs a few kilobytes of the binding's memory."""

    def __init__(self, matcher: Bozorth3, *, size: int = 200_000) -> None:
        self.matcher = matcher
        self.size = size
        self._held: OrderedDict[str, tuple[Prepared, ...]] = OrderedDict()
        self._lock = threading.Lock()
        # The check being searched: asked for once a candidate, found without a lookup.
        self._last_probe: tuple[object, tuple[Prepared, ...]] = (None, ())

    def get(self, text: str) -> tuple[Prepared, ...]:
        """A held record's views; () for one that does not read (stored before it was
        checked), which then never matches."""
        with self._lock:
            found = self._held.get(text)
            if found is not None:
                self._held.move_to_end(text)
                return found
        try:
            views = read_template(decode_template(text)).views
        except (TemplateError, ValueError):
            views = ()
        return self._keep(text, tuple(self.matcher.prepare(v) for v in views))

    def probe(self, criteria: Probe) -> tuple[Prepared, ...]:
        """A check's views (already read, their finger perhaps set by the check), prepared
        once for all the prints it is compared with."""
        last = self._last_probe
        if criteria is last[0]:
            return last[1]
        with self._lock:
            found = self._held.get(criteria.key)
        if found is None:
            found = self._keep(criteria.key, tuple(self.matcher.prepare(v) for v in criteria.views))
        self._last_probe = (criteria, found)
        return found

    def _keep(self, key: str, prepared: tuple[Prepared, ...]) -> tuple[Prepared, ...]:
        with self._lock:  # searches of two checks may run in two worker threads
            self._held[key] = prepared
            if len(self._held) > self.size:
                self._held.popitem(last=False)
        return prepared


def decode_template(text: str) -> bytes:
    """A template's bytes from base64 (standard or URL-safe alphabet, padding optional)."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64 (an ISO/IEC 19794-2 record, base64-encoded)") from None
