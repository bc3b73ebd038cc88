"""Every record kind the connector holds, by category."""

from __future__ import annotations

from collections.abc import Mapping

from connector.records.kinds.artworks import Artworks
from connector.records.kinds.base import Kind
from connector.records.kinds.biometrics import DnaProfiles, Fingerprints
from connector.records.kinds.documents import TravelDocuments
from connector.records.kinds.persons import TerrorismSuspects, WantedPersons
from connector.records.kinds.vehicles import Vehicles
from connector.vocabulary import Category

KINDS: Mapping[Category, Kind] = {
    k.category: k
    for k in (
        TravelDocuments(),
        Vehicles(),
        Artworks(),
        WantedPersons(),
        TerrorismSuspects(),
        DnaProfiles(),
        Fingerprints(),
    )
}
