"""The NCB's own AFIS, asked for a fingerprint check instead of this node's prints, over the
small HTTP contract of docs/records.md §Fingerprints; a failure is an error, never a no-hit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from connector.peers.trust import fingerprint_bytes
from connector.records.kinds.base import Match, Record
from connector.records.kinds.biometrics import FingerprintCriteria
from connector.settings.config import AfisLink
from connector.vocabulary import Category

MAX_CANDIDATES = 100
"""Candidates an AFIS answer may hold: a check's `limit` is at most 100."""


class AfisUnavailable(Exception):
    """The AFIS could not be asked or did not answer as the contract says."""


class _Candidate(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,128}$")]
    score: Annotated[float, Field(ge=0, le=1)]
    finger: Annotated[int, Field(ge=0, le=10)] = 0
    case_reference: Annotated[str, StringConstraints(max_length=64)] | None = None
    contact: Annotated[str, StringConstraints(max_length=200)] | None = None


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    candidates: Annotated[list[_Candidate], Field(max_length=MAX_CANDIDATES)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Afis:
    """Asks the AFIS at `link` over `session` (the node's, kept alive)."""

    link: AfisLink
    session: aiohttp.ClientSession

    async def candidates(self, criteria: FingerprintCriteria, limit: int) -> list[Match]:
        """The AFIS's candidates for the check, best first, at most `limit`, each a
        candidate for an examiner. AfisUnavailable when it cannot say."""
        body = {
            "templates": [
                {"template": criteria.text, "finger": _finger(criteria)},
            ],
            "limit": limit,
        }
        ssl: aiohttp.Fingerprint | bool = True
        if self.link.tls_fingerprint is not None:
            ssl = aiohttp.Fingerprint(fingerprint_bytes(self.link.tls_fingerprint))
        try:
            async with self.session.post(
                self.link.url,
                json=body,
                ssl=ssl,
                timeout=aiohttp.ClientTimeout(total=self.link.timeout),
            ) as resp:
                if resp.status != 200:
                    raise AfisUnavailable(f"the AFIS answered {resp.status}")
                raw = await resp.read()
        except TimeoutError as exc:
            raise AfisUnavailable(f"no answer within {self.link.timeout:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise AfisUnavailable(f"cannot ask the AFIS: {exc}") from exc
        try:
            answer = _Answer.model_validate_json(raw)
        except ValidationError as exc:
            raise AfisUnavailable(
                f"not an answer of the contract: {exc.errors()[0]['msg']}"
            ) from exc
        return _ranked(answer.candidates, limit)


def _finger(criteria: FingerprintCriteria) -> int | None:
    fingers = {v.finger for v in criteria.views}
    return fingers.pop() if len(fingers) == 1 and 0 not in fingers else None


def _ranked(candidates: Sequence[_Candidate], limit: int) -> list[Match]:
    ranked = sorted(candidates, key=lambda c: -c.score)[:limit]
    out = []
    for c in ranked:
        fields = c.model_dump(exclude={"id", "score"}, exclude_none=True)
        out.append(
            Match(
                record=Record(id=c.id, category=Category.FINGERPRINTS, keys={}, fields=fields),
                score=c.score,
                reasons=({"finger": c.finger, "afis": True, "verification_required": True},),
            )
        )
    return out
