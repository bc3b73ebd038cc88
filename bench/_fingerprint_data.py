"""bench.fingerprints' data: the distortion conditions and the held prints of its 1:N store
(its own module, so that the cached store is made anew only when they change)."""

from __future__ import annotations

import base64
import random

from connector.records.fingerprints.iso19794 import FingerView, write_2005
from connector.records.fingerprints.synthetic import Distortion, finger, impression
from connector.records.kinds.biometrics import Fingerprints
from connector.records.store import RecordStore
from connector.vocabulary import Category

CATEGORY = Category.FINGERPRINTS
BATCH = 5_000
CONDITIONS = {
    "hard": Distortion(),
    "mild": Distortion(
        rotation=10, shift=20, elastic=3, jitter=1, angle_jitter=2, drop=0.1, spurious=0.05
    ),
}
"""The stated rates: `hard` (Distortion's defaults) is a rolled print against a careless
plain one; `mild`, two careful live-scan impressions."""


def held_finger(seed: int, i: int) -> FingerView:
    """Held print i's finger: a finger of its own, at finger position 1 + i % 10."""
    return finger(random.Random(f"{seed}:{i}"), finger_position=1 + i % 10)


def build(store: RecordStore, *, templates: int, seed: int) -> None:
    """The 1:N store: `templates` prints, a `hard` impression of each held finger."""
    kind = Fingerprints()
    store.bulk_mode()
    how = CONDITIONS["hard"]
    batch = []
    for i in range(templates):
        view = impression(random.Random(f"{seed}:{i}:held"), held_finger(seed, i), how)
        text = base64.b64encode(write_2005([view])).decode()
        batch.append(kind.parse_row({"id": f"F{i}", "template": text}))
        if len(batch) == BATCH:
            store.upsert(CATEGORY, batch)
            batch = []
            if (i + 1) % 20_000 == 0:
                print(f"  {i + 1:,} prints", flush=True)
    store.upsert(CATEGORY, batch)
