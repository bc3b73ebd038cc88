"""Fingerprint images turned into minutiae on this node: NIST mindtct and NFIQ 2 through the
nbis-py binding, the minutiae written as an ISO/IEC 19794-2 record by our own writer. Only
PNG is taken: the binding decodes PNG (and other raster formats), not WSQ."""

from __future__ import annotations

import base64
import struct
import threading
from dataclasses import dataclass
from typing import Any

from connector.records.fingerprints.iso19794 import (
    MIN_MINUTIAE,
    FingerView,
    Minutia,
    MinutiaType,
    write_2005,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE_BYTES = 1_000_000
"""An image's largest encoded size: a 500 ppi plain impression is about 100-300 kB as PNG."""
MAX_IMAGE_SIDE = 2000
"""An image's largest width or height in pixels (4 inches at 500 ppi)."""
MIN_IMAGE_SIDE = 100
"""An image's smallest width or height: below it no finger's ridges can be followed."""
MAX_IMAGE_CHARS = (MAX_IMAGE_BYTES * 4 + 2) // 3 + 4
"""MAX_IMAGE_BYTES as base64 text."""

_KINDS: dict[str, MinutiaType] = {"RIDGE_ENDING": "ridge_ending", "BIFURCATION": "bifurcation"}


class ImageError(ValueError):
    """Why an image gives no usable template: it does not decode, is out of bounds, or too
    few minutiae were found in it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Extracted:
    """What an image gave: its finger view, the ISO/IEC 19794-2:2005 record of it, and the
    image's NFIQ 2 quality (0-100; None where NFIQ 2 could not assess it)."""

    view: FingerView
    record: bytes
    nfiq2: int | None

    @property
    def template(self) -> str:
        """The record as base64, as a check or an import row carries it."""
        return base64.b64encode(self.record).decode("ascii")


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height from its header, checked against the bounds before anything
    decodes it."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"the image is {len(data)} bytes: at most {MAX_IMAGE_BYTES}")
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 33:
        raise ImageError("not a PNG image (WSQ and other formats are not read)")
    width, height = struct.unpack(">II", data[16:24])
    for side, name in ((width, "width"), (height, "height")):
        if not MIN_IMAGE_SIDE <= side <= MAX_IMAGE_SIDE:
            raise ImageError(
                f"the image's {name} is {side} pixels: {MIN_IMAGE_SIDE} to {MAX_IMAGE_SIDE}"
            )
    return width, height


def decode_image(text: str) -> bytes:
    """An image's bytes from base64 (standard or URL-safe alphabet, padding optional)."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except ValueError:
        raise ImageError("not base64 (a PNG image, base64-encoded)") from None


class Mindtct:
    """Minutiae and NFIQ 2 quality of a 500 ppi fingerprint image. Blocking and CPU-bound
    (0.3-0.7 s an image): callers on an event loop run it in a worker thread."""

    # One image at a time in the process, however many instances: mindtct keeps its working
    # state in the C library's static arrays, which every instance shares.
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._made: dict[bool, Any] = {}

    def _extractor(self, *, nfiq2: bool) -> Any:
        # The binding loads NFIQ 2's model when made (about 0.3 s): once, on first use.
        if nfiq2 not in self._made:
            import nbis  # type: ignore[import-untyped]

            self._made[nfiq2] = nbis.new_nbis_extractor(
                nbis.NbisExtractorSettings(
                    min_quality=0.0,
                    get_center=False,
                    check_fingerprint=False,
                    compute_nfiq2=nfiq2,
                    ppi=None,
                )
            )
        return self._made[nfiq2]

    def extract(self, image: bytes, *, finger: int = 0) -> Extracted:
        """The image's finger view (at least MIN_MINUTIAE minutiae) and its record."""
        width, height = png_size(image)
        with Mindtct._lock:
            nfiq2: int | None = None
            try:
                found = self._extractor(nfiq2=True).extract_minutiae(image)
                nfiq2 = int(found.quality().score)
            except Exception:  # the binding's errors derive from a class it hides
                # NFIQ 2 fails on images it cannot assess, and takes mindtct's answer with
                # it: the minutiae are asked for again, without a quality.
                try:
                    found = self._extractor(nfiq2=False).extract_minutiae(image)
                except Exception as exc:
                    raise ImageError(
                        f"the image could not be read ({type(exc).__name__})"
                    ) from None
            minutiae = tuple(
                Minutia(
                    x=min(int(m.x()), width - 1),
                    y=min(int(m.y()), height - 1),
                    angle=round(float(m.angle()) * 256 / 360) % 256,
                    type=_KINDS.get(m.kind().name, "other"),
                    quality=max(0, min(100, round(float(m.reliability()) * 100))),
                )
                for m in found.get()
            )
        view = FingerView(
            finger=finger,
            minutiae=minutiae,
            width=width,
            height=height,
            quality=nfiq2 if nfiq2 is not None else 0,
        )
        if len(minutiae) < MIN_MINUTIAE:
            raise ImageError(
                f"{len(minutiae)} minutiae found in the image: at least {MIN_MINUTIAE} are "
                "needed to compare it (give a sharper or larger impression)"
            )
        return Extracted(view=view, record=write_2005([view]), nfiq2=nfiq2)
