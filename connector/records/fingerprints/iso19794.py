"""ISO/IEC 19794-2 finger minutiae records, the 2005 and the 2011 format: read field by field
(every length checked against the bytes), and written (tests, the bench, the demo). The
layouts, and where they were checked: docs/records.md §Fingerprints."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

MAGIC = b"FMR\x00"
VERSION_2005 = b" 20\x00"
VERSION_2011 = b"030\x00"
MIN_MINUTIAE = 12
"""Minutiae a finger view needs to be imported or searched for: below it bozorth3's scores
say little (a partial print of a few minutiae matches many fingers by chance)."""
MAX_VIEWS = 10
"""Finger views one record may hold (one per finger of the hands)."""
FINGER_NAMES = (
    "unknown",
    "right thumb",
    "right index",
    "right middle",
    "right ring",
    "right little",
    "left thumb",
    "left index",
    "left middle",
    "left ring",
    "left little",
)
"""ISO/IEC 19794-2 finger position codes 0 to 10 (the standard's table, as ANSI/NIST's)."""
STANDARD_PPCM = 197
"""500 pixels an inch, in pixels a centimetre: the resolution minutiae are compared at."""

Version = Literal["2005", "2011"]
MinutiaType = Literal["other", "ridge_ending", "bifurcation"]
_TYPES: tuple[MinutiaType, ...] = ("other", "ridge_ending", "bifurcation")


class TemplateError(ValueError):
    """Why the bytes are not a usable ISO/IEC 19794-2 record, and at which byte."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Minutia:
    """One minutia: pixel position (origin top left, y down), direction in the record's unit
    of 360/256 degrees counter-clockwise from the x axis, type and quality (0-100)."""

    x: int
    y: int
    angle: int
    type: MinutiaType = "ridge_ending"
    quality: int = 0

    @property
    def degrees(self) -> float:
        return self.angle * 360 / 256


@dataclass(frozen=True, slots=True, kw_only=True)
class FingerView:
    """One finger's minutiae, with the image they were found in."""

    finger: int
    minutiae: tuple[Minutia, ...]
    width: int
    height: int
    resolution_x: int = STANDARD_PPCM
    resolution_y: int = STANDARD_PPCM
    quality: int = 0
    impression: int = 0
    view: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    """A finger minutiae record: its format version and its finger views."""

    version: Version
    views: tuple[FingerView, ...]


class _Reader:
    """Big-endian fields off the record, each read saying what it is when the bytes end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int, what: str) -> bytes:
        if self.at + size > len(self.data):
            raise TemplateError(f"the record ends at byte {len(self.data)} inside {what}")
        out = self.data[self.at : self.at + size]
        self.at += size
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int(struct.unpack(">H", self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(struct.unpack(">I", self.take(4, what))[0])


def read_template(data: bytes) -> Template:
    """The record in `data`, either format; TemplateError says what is wrong."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise TemplateError("not an ISO/IEC 19794-2 record: it does not begin with 'FMR\\0'")
    version = data[4:8]
    if version == VERSION_2005:
        return _read_2005(_Reader(data))
    if version == VERSION_2011:
        return _read_2011(_Reader(data))
    raise TemplateError(
        f"version {version!r} is neither 2005 (' 20\\0') nor 2011 ('030\\0') of ISO/IEC 19794-2"
    )


def _check_length(r: _Reader, declared: int, what: str) -> None:
    if declared != len(r.data):
        raise TemplateError(f"{what} says {declared} bytes, the record has {len(r.data)}")


def _minutia(r: _Reader, i: int, *, with_quality: bool) -> Minutia:
    what = f"minutia {i + 1}"
    first = r.u16(what)
    second = r.u16(what)
    angle = r.u8(what)
    quality = r.u8(what) if with_quality else 0
    kind = first >> 14
    if kind == 3:
        raise TemplateError(f"{what}: type 3 is not a minutia type (0 other, 1 ending, 2 fork)")
    return Minutia(
        x=first & 0x3FFF, y=second & 0x3FFF, angle=angle, type=_TYPES[kind], quality=quality
    )


def _extended(r: _Reader, what: str) -> None:
    """Skips the extended data (ridge counts, cores and deltas, zonal quality): bozorth3
    compares minutiae only."""
    length = r.u16(f"{what}'s extended data length")
    r.take(length, f"{what}'s extended data")


def _validated(view: FingerView, what: str) -> FingerView:
    if view.finger > 10:
        raise TemplateError(
            f"{what}: finger position {view.finger} is not a single finger (0 to 10)"
        )
    if not view.resolution_x or not view.resolution_y:
        raise TemplateError(f"{what}: a resolution of 0 pixels a centimetre")
    for i, m in enumerate(view.minutiae):
        if (view.width and m.x >= view.width) or (view.height and m.y >= view.height):
            raise TemplateError(
                f"{what}: minutia {i + 1} at ({m.x}, {m.y}) lies outside the "
                f"{view.width}×{view.height} image"
            )
    return view


def _read_2005(r: _Reader) -> Template:
    r.take(8, "the format identifier")
    _check_length(r, r.u32("the record length"), "the record length")
    r.u16("the capture equipment")
    width = r.u16("the image width")
    height = r.u16("the image height")
    res_x = r.u16("the horizontal resolution")
    res_y = r.u16("the vertical resolution")
    count = r.u8("the number of finger views")
    r.u8("the reserved byte")
    views = []
    for v in range(count):
        what = f"finger view {v + 1}"
        finger = r.u8(f"{what}'s finger position")
        view_impression = r.u8(f"{what}'s view number")
        quality = r.u8(f"{what}'s quality")
        n = r.u8(f"{what}'s number of minutiae")
        minutiae = tuple(_minutia(r, i, with_quality=True) for i in range(n))
        _extended(r, what)
        views.append(
            _validated(
                FingerView(
                    finger=finger,
                    minutiae=minutiae,
                    width=width,
                    height=height,
                    resolution_x=res_x,
                    resolution_y=res_y,
                    quality=quality,
                    view=view_impression >> 4,
                    impression=view_impression & 0x0F,
                ),
                what,
            )
        )
    if r.at != len(r.data):
        raise TemplateError(f"{len(r.data) - r.at} bytes after the last finger view")
    return Template(version="2005", views=tuple(views))


def _read_2011(r: _Reader) -> Template:
    r.take(8, "the format identifier")
    _check_length(r, r.u32("the record length"), "the record length")
    count = r.u16("the number of finger representations")
    certified = r.u8("the device certification flag")
    views = []
    for v in range(count):
        what = f"finger representation {v + 1}"
        start = r.at
        length = r.u32(f"{what}'s length")
        if length < 34 or start + length > len(r.data):
            raise TemplateError(
                f"{what}'s length {length} does not fit the record ({len(r.data)} bytes)"
            )
        r.take(9, f"{what}'s capture date and time")
        r.u8(f"{what}'s capture device technology")
        r.u16(f"{what}'s capture device vendor")
        r.u16(f"{what}'s capture device type")
        for q in range(r.u8(f"{what}'s number of quality blocks")):
            r.take(5, f"{what}'s quality block {q + 1}")
        if certified:
            for c in range(r.u8(f"{what}'s number of certification blocks")):
                r.take(3, f"{what}'s certification block {c + 1}")
        finger = r.u8(f"{what}'s finger position")
        number = r.u8(f"{what}'s representation number")
        res_x = r.u16(f"{what}'s horizontal resolution")
        res_y = r.u16(f"{what}'s vertical resolution")
        impression = r.u8(f"{what}'s impression type")
        width = r.u16(f"{what}'s image width")
        height = r.u16(f"{what}'s image height")
        sizes = r.u8(f"{what}'s minutia field length")
        size = sizes >> 4
        if size not in (5, 6):
            raise TemplateError(f"{what}: a minutia takes 5 or 6 bytes, not {size}")
        n = r.u8(f"{what}'s number of minutiae")
        minutiae = tuple(_minutia(r, i, with_quality=size == 6) for i in range(n))
        _extended(r, what)
        if r.at - start != length:
            raise TemplateError(f"{what} says {length} bytes, its fields take {r.at - start}")
        views.append(
            _validated(
                FingerView(
                    finger=finger,
                    minutiae=minutiae,
                    width=width,
                    height=height,
                    resolution_x=res_x,
                    resolution_y=res_y,
                    impression=impression,
                    view=number,
                ),
                what,
            )
        )
    if r.at != len(r.data):
        raise TemplateError(f"{len(r.data) - r.at} bytes after the last finger representation")
    return Template(version="2011", views=tuple(views))


def usable(template: Template, *, minimum: int = MIN_MINUTIAE) -> Template:
    """The template when it holds 1 to MAX_VIEWS views of at least `minimum` minutiae each."""
    if not template.views:
        raise TemplateError("the record holds no finger view")
    if len(template.views) > MAX_VIEWS:
        raise TemplateError(f"{len(template.views)} finger views: at most {MAX_VIEWS}")
    for i, view in enumerate(template.views):
        if len(view.minutiae) < minimum:
            raise TemplateError(
                f"finger view {i + 1} has {len(view.minutiae)} minutiae: at least {minimum} "
                "are needed to compare it"
            )
    return template


def _minutia_bytes(m: Minutia, *, with_quality: bool) -> bytes:
    code = _TYPES.index(m.type)
    out = struct.pack(">HHB", (code << 14) | m.x, m.y, m.angle)
    return out + bytes([m.quality]) if with_quality else out


def write_2005(views: Sequence[FingerView]) -> bytes:
    """An ISO/IEC 19794-2:2005 record of these views (image size and resolution of the
    first: the 2005 header holds one for all)."""
    first = views[0]
    body = b""
    for view in views:
        body += struct.pack(
            ">BBBB",
            view.finger,
            (view.view << 4) | view.impression,
            view.quality,
            len(view.minutiae),
        )
        body += b"".join(_minutia_bytes(m, with_quality=True) for m in view.minutiae)
        body += struct.pack(">H", 0)
    header = MAGIC + VERSION_2005
    header += struct.pack(
        ">IHHHHHBB",
        24 + len(body),
        0,
        first.width,
        first.height,
        first.resolution_x,
        first.resolution_y,
        len(views),
        0,
    )
    return header + body


def write_2011(views: Sequence[FingerView]) -> bytes:
    """An ISO/IEC 19794-2:2011 record of these views: no capture date (0xFF), one quality
    block, 6-byte minutiae, no certification."""
    reps = b""
    for view in views:
        fields = b"\xff" * 9 + struct.pack(">BHH", 0, 0, 0)
        fields += struct.pack(">BBHH", 1, view.quality, 0, 0)
        fields += struct.pack(
            ">BBHHBHHBB",
            view.finger,
            view.view,
            view.resolution_x,
            view.resolution_y,
            view.impression,
            view.width,
            view.height,
            (6 << 4) | 0,
            len(view.minutiae),
        )
        fields += b"".join(_minutia_bytes(m, with_quality=True) for m in view.minutiae)
        fields += struct.pack(">H", 0)
        reps += struct.pack(">I", 4 + len(fields)) + fields
    header = MAGIC + VERSION_2011 + struct.pack(">IHB", 15 + len(reps), len(views), 0)
    return header + reps
