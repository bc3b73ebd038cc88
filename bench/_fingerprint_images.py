"""Synthetic fingerprint images after SFinGe (Cappelli & Maltoni): an orientation field from
singular points (Sherlock & Monro's zero-pole model), ridges grown from noise by Gabor filters
tuned to that field at about 9 pixels a ridge (500 ppi), then impressions of the master print
turned, moved, elastically distorted, pressed dry or wet and noisy. No real person's print."""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, signal  # type: ignore[import-untyped]

WIDTH = 320
HEIGHT = 400
"""An impression: 16 × 20 mm at 500 pixels an inch."""
RIDGE_PERIOD = 9.0
"""Pixels from one ridge to the next at 500 ppi (SFinGe's typical 1/9 frequency)."""
_ORIENTATIONS = 16
_ITERATIONS = 12

Image = NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Master:
    """A synthetic finger: its ridge pattern (1 ridge, -1 valley, 0 off the finger)."""

    ridges: Image
    pattern: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Pressing:
    """How one impression differs from the master: rotation (degrees), shift (pixels), the
    amplitude of a smooth elastic warp (pixels), `dryness` from -1 (wet: ridges run together)
    to 1 (dry: ridges break), and the standard deviation of pixel noise (of 255)."""

    rotation: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    elastic: float = 0.0
    dryness: float = 0.0
    noise: float = 8.0


def _singular_points(rng: np.random.Generator, pattern: str) -> tuple[list[complex], list[complex]]:
    cx = WIDTH / 2 + rng.uniform(-25, 25)
    cy = HEIGHT * 0.45 + rng.uniform(-25, 25)
    if pattern == "arch":
        return [], []
    if pattern == "whorl":
        gap = rng.uniform(10, 25)
        return (
            [complex(cx, cy - gap), complex(cx, cy + gap)],
            [complex(cx - 110, cy + 150), complex(cx + 110, cy + 150)],
        )
    side = 1 if pattern == "right_loop" else -1
    return [complex(cx, cy)], [
        complex(cx - side * rng.uniform(80, 120), cy + rng.uniform(120, 160))
    ]


def orientation(rng: np.random.Generator, pattern: str) -> Image:
    """Ridge orientation (radians modulo π, y down) at each pixel: Sherlock & Monro's model,
    half the sum of the arguments to the deltas less those to the cores; an arch is a gentle
    wave."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    z = xs + 1j * ys
    cores, deltas = _singular_points(rng, pattern)
    if not cores:
        amp = rng.uniform(0.5, 0.9)
        centre = WIDTH / 2 + rng.uniform(-30, 30)
        theta: Image = np.arctan(amp * np.cos((xs - centre) / 70) * (xs - centre) / 90)
        theta = -theta * np.exp(-np.abs(ys - HEIGHT * 0.5) / 250)
        return np.asarray(theta, dtype=np.float64)
    total = np.zeros_like(xs)
    for d in deltas:
        total += np.angle(z - d)
    for c in cores:
        total -= np.angle(z - c)
    return np.asarray(total / 2, dtype=np.float64)


def _gabor(angle: float) -> Image:
    """A Gabor kernel whose wave runs across ridges of this orientation."""
    half = 8
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    across = -xs * math.sin(angle) + ys * math.cos(angle)
    kernel = np.exp(-(xs**2 + ys**2) / (2 * 4.0**2)) * np.cos(2 * math.pi * across / RIDGE_PERIOD)
    return np.asarray(kernel - kernel.mean(), dtype=np.float64)


def _finger_mask(rng: np.random.Generator) -> Image:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    a = WIDTH * rng.uniform(0.40, 0.46)
    b = HEIGHT * rng.uniform(0.44, 0.49)
    inside = ((xs - WIDTH / 2) / a) ** 2 + ((ys - HEIGHT * 0.52) / b) ** 2
    return np.asarray(np.clip((1.0 - inside) * 8, 0.0, 1.0), dtype=np.float64)


def master(seed: int) -> Master:
    """A finger grown from a few noise seeds: each round every pixel takes the response of
    the Gabor filter tuned to its orientation, squashed, until ridges fill the finger; where
    the flow cannot be followed smoothly, ridges end or fork, as minutiae do."""
    rng = np.random.default_rng(seed)
    pattern = str(
        rng.choice(["arch", "left_loop", "right_loop", "whorl"], p=[0.1, 0.35, 0.35, 0.2])
    )
    theta = orientation(rng, pattern) % math.pi
    bins = np.round(theta / math.pi * _ORIENTATIONS).astype(int) % _ORIENTATIONS
    kernels = [_gabor(k * math.pi / _ORIENTATIONS) for k in range(_ORIENTATIONS)]
    image = np.zeros((HEIGHT, WIDTH))
    seeds = rng.integers(0, [HEIGHT, WIDTH], size=(60, 2))
    image[seeds[:, 0], seeds[:, 1]] = rng.choice([-1.0, 1.0], size=60)
    image += rng.normal(0, 0.05, size=image.shape)
    for _ in range(_ITERATIONS):
        out = np.zeros_like(image)
        for k, kernel in enumerate(kernels):
            where = bins == k
            response = signal.fftconvolve(image, kernel, mode="same")
            out[where] = response[where]
        image = np.tanh(3 * out / (np.abs(out).max() + 1e-9) * 4)
    return Master(ridges=image * _finger_mask(rng), pattern=pattern)


def impression(master: Master, how: Pressing, seed: int) -> bytes:
    """One impression of the finger as an 8-bit greyscale PNG: dark ridges on white."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    cx, cy = WIDTH / 2, HEIGHT / 2
    turn = math.radians(how.rotation)
    # Where each output pixel comes from in the master: the inverse of turn-then-move.
    rx, ry = xs - cx - how.shift[0], ys - cy - how.shift[1]
    sx = rx * math.cos(turn) - ry * math.sin(turn) + cx
    sy = rx * math.sin(turn) + ry * math.cos(turn) + cy
    if how.elastic:
        phases = rng.uniform(0, math.tau, size=4)
        sx += how.elastic * np.sin(ys / 70 + phases[0]) * np.cos(xs / 90 + phases[1])
        sy += how.elastic * np.sin(xs / 70 + phases[2]) * np.cos(ys / 90 + phases[3])
    ridges = ndimage.map_coordinates(master.ridges, [sy, sx], order=1, cval=0.0)
    ink = np.clip((ridges + 1) / 2, 0, 1) * (np.abs(ridges) > 0.02)
    if how.dryness > 0:
        broken = ndimage.gaussian_filter(rng.random(ink.shape), 2.0) > 0.5 + 0.1 * (1 - how.dryness)
        ink = np.where(broken, ink * 0.3, ink)
        ink = ndimage.grey_erosion(ink, size=(2, 2))
    elif how.dryness < 0:
        ink = ndimage.grey_dilation(ink, size=(2, 2)) * (1 + how.dryness * 0.1)
    grey = 255 - 215 * ndimage.gaussian_filter(ink, 0.7)
    grey += rng.normal(0, how.noise, size=grey.shape)
    return png(np.clip(grey, 0, 255).astype(np.uint8))


def png(pixels: NDArray[np.uint8]) -> bytes:
    """An 8-bit greyscale PNG of these pixels (rows unfiltered, deflated)."""
    height, width = pixels.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
