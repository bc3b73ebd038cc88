"""Synthetic minutiae for the demo, the tests and the bench: a random finger (minutiae kept
apart as ridges keep them, pointing along a ridge flow) and impressions of it, turned,
moved, elastically distorted, with minutiae lost and spurious ones found at stated rates.
No real person's print."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from connector.records.fingerprints.iso19794 import FingerView, Minutia

WIDTH = 400
HEIGHT = 500
"""An impression's image: 0.8 × 1 inch at 500 pixels an inch."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Distortion:
    """How one impression differs from the finger: at most `rotation` degrees turned and
    `shift` pixels moved (each drawn uniformly), a smooth elastic warp of up to `elastic`
    pixels, local noise (`jitter` pixels, `angle_jitter` degrees, standard deviations),
    each true minutia lost with probability `drop`, and `spurious` × the finger's count
    of false minutiae added."""

    rotation: float = 20.0
    shift: float = 40.0
    elastic: float = 6.0
    jitter: float = 2.0
    angle_jitter: float = 4.0
    drop: float = 0.2
    spurious: float = 0.1


PATTERNS = ("arch", "loop", "whorl")
"""The classes a synthetic finger's ridge flow is drawn from."""


def ridge_direction(pattern: str, x: float, y: float, core: tuple[float, float]) -> float:
    """The ridge orientation (radians, modulo π) at (x, y) of a simple flow of that class
    around `core`: real minutiae follow their finger's ridges, so two fingers of one class
    have minutiae pointing alike, and impostor pairs score higher than random points do."""
    dx, dy = x - core[0], core[1] - y
    if pattern == "arch":
        return math.atan(0.8 * math.sin(dx / 60) * math.exp(-abs(dy) / 200))
    around = math.atan2(dy, dx)
    if pattern == "whorl":
        return around + math.pi / 2
    return around / 2 + math.pi / 2  # a loop: half a turn of flow around the core


def finger(rng: random.Random, *, count: int = 45, finger_position: int = 0) -> FingerView:
    """A finger's minutiae: `count` points at least 18 pixels apart in the image's middle,
    each pointing along its ridge (either way along it, a few degrees off), of a flow class
    and core drawn at random."""
    pattern = rng.choice(PATTERNS)
    core = (rng.uniform(140, WIDTH - 140), rng.uniform(180, HEIGHT - 180))
    points: list[tuple[int, int]] = []
    tries = 0
    while len(points) < count and tries < count * 200:
        tries += 1
        x = rng.randint(40, WIDTH - 40)
        y = rng.randint(40, HEIGHT - 40)
        if all((x - a) ** 2 + (y - b) ** 2 >= 18**2 for a, b in points):
            points.append((x, y))
    minutiae = []
    for x, y in points:
        along = ridge_direction(pattern, x, y, core) + rng.choice((0.0, math.pi))
        degrees = math.degrees(along) + rng.gauss(0, 8)
        minutiae.append(
            Minutia(
                x=x,
                y=y,
                angle=round(degrees * 256 / 360) % 256,
                type=rng.choice(("ridge_ending", "bifurcation")),
                quality=rng.randint(40, 100),
            )
        )
    return FingerView(finger=finger_position, minutiae=tuple(minutiae), width=WIDTH, height=HEIGHT)


def impression(rng: random.Random, true: FingerView, how: Distortion) -> FingerView:
    """One impression of the finger `true`, distorted as `how` says."""
    turn = math.radians(rng.uniform(-how.rotation, how.rotation))
    dx = rng.uniform(-how.shift, how.shift)
    dy = rng.uniform(-how.shift, how.shift)
    # The elastic warp: two long sine waves a direction, phases drawn per impression.
    waves = [(rng.uniform(0, math.tau), rng.uniform(0, math.tau)) for _ in range(2)]
    cx, cy = true.width / 2, true.height / 2
    out: list[Minutia] = []

    def place(x: float, y: float, degrees: float, m: Minutia) -> None:
        # Image y runs down; a turn counter-clockwise as seen is a turn of -angle in it.
        rx, ry = x - cx, y - cy
        nx = rx * math.cos(turn) + ry * math.sin(turn) + cx + dx
        ny = -rx * math.sin(turn) + ry * math.cos(turn) + cy + dy
        nx += how.elastic * math.sin(nx / 90 + waves[0][0]) * math.cos(ny / 110 + waves[0][1])
        ny += how.elastic * math.sin(ny / 90 + waves[1][0]) * math.cos(nx / 110 + waves[1][1])
        nx += rng.gauss(0, how.jitter)
        ny += rng.gauss(0, how.jitter)
        if not (0 <= nx < true.width and 0 <= ny < true.height):
            return  # moved off the image: lost, as on a real sensor
        a = degrees + math.degrees(turn) + rng.gauss(0, how.angle_jitter)
        out.append(
            Minutia(
                x=int(nx),
                y=int(ny),
                angle=round(a * 256 / 360) % 256,
                type=m.type,
                quality=m.quality,
            )
        )

    for m in true.minutiae:
        if rng.random() >= how.drop:
            place(m.x, m.y, m.degrees, m)
    for _ in range(round(len(true.minutiae) * how.spurious)):
        fake = Minutia(
            x=rng.randint(0, true.width - 1),
            y=rng.randint(0, true.height - 1),
            angle=rng.randrange(256),
            quality=rng.randint(10, 60),
        )
        place(fake.x, fake.y, fake.degrees, fake)
    return FingerView(finger=true.finger, minutiae=tuple(out), width=true.width, height=true.height)
