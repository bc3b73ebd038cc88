"""Vehicles: stolen, embezzled or missing, found by VIN and by registration plate (+ country)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from connector.errors import InvalidCriteria
from connector.records.identifiers.vin import normalise_plate, validate_vin
from connector.records.kinds.base import KeyColumn, Kind, Lookup, Match, Record, RowError
from connector.records.rows import describe_validation, empty_is_none, not_in_future
from connector.vocabulary import (
    PLATE_COUNTRY,
    Category,
    country_from_alpha3,
    current_names,
    is_country,
)

VehicleStatus = Literal["stolen", "embezzled", "missing"]

FIRST_CAR_YEAR = 1886  # Benz Patent-Motorwagen
VIN_SCORE = 1.0
PLATE_SCORE = 0.9  # plates are reissued over time; a VIN is the vehicle's for life
PLATE_OTHER_VIN_SCORE = 0.5  # same plate, another VIN: a reissued or a cloned plate

_CRITERIA_KEYS = frozenset({"vin", "plate", PLATE_COUNTRY})
_Text60 = Annotated[str, StringConstraints(max_length=60)]


class VehicleRow(BaseModel):
    """One import row of `vehicles` (NDJSON object or CSV line).

    A vehicle is known by its VIN, or by its plate with the plate's country, or by both.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    vin: Annotated[str, StringConstraints(max_length=64)] | None = None
    plate: Annotated[str, StringConstraints(max_length=64)] | None = None
    plate_country: Annotated[str, StringConstraints(max_length=8, to_upper=True)] | None = None
    make: _Text60 | None = None
    model: _Text60 | None = None
    colour: _Text60 | None = None
    year: Annotated[int, Field(ge=FIRST_CAR_YEAR)] | None = None
    stolen_on: date | None = None
    status: VehicleStatus
    owner_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    remarks: Annotated[str, StringConstraints(max_length=1000)] | None = None

    _empty = field_validator(
        "id",
        "vin",
        "plate",
        "plate_country",
        "make",
        "model",
        "colour",
        "year",
        "stolen_on",
        "owner_name",
        "remarks",
        mode="before",
    )(empty_is_none)
    _past = field_validator("stolen_on")(not_in_future)

    @field_validator("vin")
    @classmethod
    def _vin(cls, v: str | None) -> str | None:
        # A wrong check digit is refused where mandatory, kept where advisory.
        return None if v is None else validate_vin(v).vin

    @field_validator("plate")
    @classmethod
    def _plate(cls, v: str | None) -> str | None:
        if v is not None:
            normalise_plate(v)
        return v  # kept as written; the key is the normalised form

    @field_validator("plate_country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        if v is not None and not is_country(v):
            alpha2 = country_from_alpha3(v) if len(v) == 3 else None
            hint = f" (did you mean {alpha2}?)" if alpha2 else ""
            raise ValueError(f"{v!r} is not an ISO 3166-1 alpha-2 country code{hint}")
        return v

    @field_validator("year")
    @classmethod
    def _year(cls, v: int | None) -> int | None:
        # A model year may run one calendar year ahead.
        latest = date.today().year + 1
        if v is not None and v > latest:
            raise ValueError(f"year {v} is after {latest}: no vehicle has that model year yet")
        return v


@dataclass(frozen=True, slots=True, kw_only=True)
class VehicleCriteria:
    """What a vehicle check looks for: a VIN, a plate (with or without its country), or both.

    `vin` and `plate_key` are normalised; `plate` is the plate as given. `vin_check_digit_ok`
    says what an advisory check digit showed (None: no VIN, or none carried).
    """

    vin: str | None = None
    vin_check_digit_ok: bool | None = None
    plate_key: str | None = None
    plate: str | None = None
    country: str | None = None


def vehicle_criteria(raw: Mapping[str, object]) -> VehicleCriteria:
    """Validate {"vin": ...} and/or {"plate": ..., "plate_country"?: ...} (`country` is the
    old spelling of `plate_country`).

    Raises InvalidCriteria naming the field: an unknown key, a VIN with characters or a length
    no VIN has or with a wrong mandatory check digit, a plate that is not one, a country that
    is not ISO 3166-1 alpha-2 or that comes without a plate.
    """
    raw = current_names(Category.VEHICLES, raw)
    unknown = sorted(str(key) for key in raw if key not in _CRITERIA_KEYS)
    if unknown:
        raise InvalidCriteria(
            f"unknown vehicle criterion {unknown[0]!r}: expected vin and/or plate with "
            "optional plate_country",
            field=unknown[0],
        )
    vin_raw, plate_raw, country_raw = raw.get("vin"), raw.get("plate"), raw.get(PLATE_COUNTRY)
    if vin_raw is None and plate_raw is None:
        raise InvalidCriteria("a vehicle check needs a vin or a plate", field="vin")
    vin: str | None = None
    vin_ok: bool | None = None
    if vin_raw is not None:
        if not isinstance(vin_raw, str):
            raise InvalidCriteria("vin must be a string", field="vin")
        try:
            checked = validate_vin(vin_raw)
        except ValueError as exc:
            raise InvalidCriteria(str(exc), field="vin") from exc
        vin, vin_ok = checked.vin, checked.check_digit_ok
    plate: str | None = None
    plate_key: str | None = None
    if plate_raw is not None:
        if not isinstance(plate_raw, str):
            raise InvalidCriteria("plate must be a string", field="plate")
        try:
            plate_key = normalise_plate(plate_raw)
        except ValueError as exc:
            raise InvalidCriteria(str(exc), field="plate") from exc
        plate = plate_raw
    country: str | None = None
    if country_raw is not None:
        if plate_raw is None:
            raise InvalidCriteria(
                "plate_country is the plate's country: give a plate with it",
                field=PLATE_COUNTRY,
            )
        if not isinstance(country_raw, str):
            raise InvalidCriteria("plate_country must be a string", field=PLATE_COUNTRY)
        country = country_raw.strip().upper()
        if not (country.isascii() and is_country(country)):
            alpha2 = country_from_alpha3(country) if len(country) == 3 else None
            hint = f" (did you mean {alpha2!r}?)" if alpha2 else ""
            raise InvalidCriteria(
                f"plate_country {country_raw[:8]!r} is not an ISO 3166-1 alpha-2 code{hint}",
                field=PLATE_COUNTRY,
            )
    return VehicleCriteria(
        vin=vin, vin_check_digit_ok=vin_ok, plate_key=plate_key, plate=plate, country=country
    )


class Vehicles(Kind):
    """One natural key across imports: the VIN when known (a vehicle keeps it for life), else
    the plate with its country. A plate-only record that later gains a VIN is a new key."""

    row_model = VehicleRow
    category = Category.VEHICLES
    key_columns = (
        KeyColumn(name="vehicle_key", length=24),
        KeyColumn(name="vin", length=17, nullable=True),
        KeyColumn(name="plate_key", length=12, nullable=True),
        KeyColumn(name="plate_country", length=2, nullable=True),
    )
    natural_key = ("vehicle_key",)
    # ("plate_key", "plate_country") also serves lookups by plate alone (its prefix).
    indexes = (("vin",), ("plate_key", "plate_country"))
    csv_required = frozenset({"status"})
    compared = MappingProxyType(
        {
            "vin": frozenset({"vin"}),
            "plate": frozenset({"plate"}),
            PLATE_COUNTRY: frozenset({PLATE_COUNTRY}),
        }
    )
    identifying = frozenset({"vin", "plate", "plate_country"})

    def parse_row(self, raw: Mapping[str, Any]) -> Record:
        try:
            row = VehicleRow.model_validate(current_names(self.category, raw))
        except ValidationError as exc:
            raise RowError(describe_validation(exc)) from exc
        plate_key = normalise_plate(row.plate) if row.plate is not None else None
        if plate_key is not None and row.plate_country is None:
            raise RowError("plate_country: a plate needs the country that issued it")
        if row.vin is None and plate_key is None:
            raise RowError("row: a vehicle needs a vin, or a plate with its plate_country")
        if row.stolen_on is not None and row.year is not None and row.stolen_on.year < row.year - 1:
            raise RowError(
                f"stolen_on: {row.stolen_on.isoformat()} lies before a vehicle of "
                f"model year {row.year} could be built"
            )
        if row.vin is not None:
            natural, derived_id = f"VIN:{row.vin}", f"VIN-{row.vin}"
        else:
            natural = f"PLATE:{row.plate_country}:{plate_key}"
            derived_id = f"PLATE-{row.plate_country}-{plate_key}"
        fields = {
            "vin": row.vin,
            "plate": row.plate,
            "plate_country": row.plate_country,
            "make": row.make,
            "model": row.model,
            "colour": row.colour,
            "year": row.year,
            "stolen_on": row.stolen_on.isoformat() if row.stolen_on else None,
            "status": row.status,
            "owner_name": row.owner_name,
            "remarks": row.remarks,
        }
        return Record(
            id=row.id or derived_id,
            category=self.category,
            id_given=row.id is not None,
            keys={
                "vehicle_key": natural,
                "vin": row.vin,
                "plate_key": plate_key,
                "plate_country": row.plate_country,
            },
            fields={k: v for k, v in fields.items() if v is not None},
        )

    def parse_criteria(self, raw: Mapping[str, object]) -> VehicleCriteria:
        return vehicle_criteria(raw)

    def restrict(
        self, criteria: VehicleCriteria, searched: frozenset[str]
    ) -> VehicleCriteria | None:
        by_vin = "vin" in searched and criteria.vin is not None
        by_plate = "plate" in searched and criteria.plate_key is not None
        if not (by_vin or by_plate):
            return None
        return replace(
            criteria,
            vin=criteria.vin if by_vin else None,
            vin_check_digit_ok=criteria.vin_check_digit_ok if by_vin else None,
            plate_key=criteria.plate_key if by_plate else None,
            plate=criteria.plate if by_plate else None,
            country=criteria.country if by_plate and "plate_country" in searched else None,
        )

    def subject(self, criteria: VehicleCriteria) -> str | None:
        return criteria.vin or criteria.plate_key

    def variant(self, criteria: VehicleCriteria) -> int:
        return hash((criteria.vin, criteria.plate_key, criteria.country))

    def lookups(self, criteria: VehicleCriteria) -> Sequence[Lookup]:
        found: list[Lookup] = []
        if criteria.vin is not None:
            found.append({"vin": criteria.vin})
        if criteria.plate_key is not None:
            by_plate = {"plate_key": criteria.plate_key}
            if criteria.country is not None:
                by_plate["plate_country"] = criteria.country
            found.append(by_plate)
        return found

    def score(self, criteria: VehicleCriteria, record: Record) -> Match | None:
        vin = record.keys.get("vin")
        vin_match = criteria.vin is not None and vin == criteria.vin
        plate_match = (
            criteria.plate_key is not None
            and record.keys.get("plate_key") == criteria.plate_key
            and criteria.country in (None, record.keys.get("plate_country"))
        )
        reasons: list[Mapping[str, Any]] = []
        if vin_match:
            reasons.append({"field": "vin", "match": "exact"})
        if plate_match:
            reasons.append({"field": "plate", "match": "exact"})
            if criteria.country is not None:
                reasons.append({"field": "plate_country", "match": "exact"})
        if vin_match:
            score = VIN_SCORE
        elif plate_match:
            other_vin = criteria.vin is not None and vin is not None
            if other_vin:
                reasons.append({"field": "vin", "match": "different"})
            score = PLATE_OTHER_VIN_SCORE if other_vin else PLATE_SCORE
        else:
            return None
        return Match(record=record, score=score, reasons=tuple(reasons))
