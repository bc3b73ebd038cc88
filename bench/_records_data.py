"""Reproducible national records for benchmarks: travel documents and vehicles, from a seed.

Numbers, VINs and plates look like real ones (per-country formats, ISO 3779 VINs with the
check digit computed by `connector.records.identifiers.vin.vin_check_digit`) and are unique by
construction: the k-th number of a format is an affine permutation of k over the format's
whole space, so numbers never collide and a number from beyond the rows written is certainly
absent, which gives misses that are known to miss without a set of every key in memory.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from connector.records.identifiers.vin import vin_check_digit

LETTERS = "ABCDEFGHIJKLMNPQRSTUVWXYZ"  # no O: a document key reads O as 0
DIGITS = "0123456789"
NONZERO = "123456789"
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # ISO 3779: no I, O, Q
# Model-year codes of VIN position 10, a 30-year cycle from 1980 (A) on.
_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"
LAST_DAY = date(2025, 12, 31)  # fixed, so a row never depends on the day it is made

Segment = str | tuple[str, ...]
"""A literal (a separator, kept in the number as written) or the choices of one position."""


class Format:
    """A number format: its k-th number, for k in [0, space), all distinct."""

    def __init__(self, segments: Sequence[Segment], rng: random.Random) -> None:
        self.segments = list(segments)
        self.radices = [len(s) for s in self.segments if isinstance(s, tuple)]
        self.space = math.prod(self.radices)
        # a·k + b mod space is a permutation of [0, space) when gcd(a, space) == 1.
        a = rng.randrange(self.space // 3, self.space) | 1
        while math.gcd(a, self.space) != 1:
            a += 2
        self.a, self.b = a, rng.randrange(self.space)

    def number(self, k: int) -> str:
        if not 0 <= k < self.space:
            raise ValueError(f"k={k} is outside the format's {self.space} numbers")
        value = (self.a * k + self.b) % self.space
        digits: list[str] = []
        for seg in reversed(self.segments):
            if isinstance(seg, tuple):
                value, i = divmod(value, len(seg))
                digits.append(seg[i])
            else:
                digits.append(seg)
        return "".join(reversed(digits))


_NAMED = {
    "L": tuple(LETTERS),
    "D": tuple(DIGITS),
    "N": tuple(NONZERO),
    "V": tuple(VIN_CHARS),
    "X": tuple(LETTERS + DIGITS),
}


def fmt(*parts: str | Sequence[str]) -> list[Segment]:
    """`fmt("LL", "-", "DDD")`: in a string of codes, L is a letter, D a digit, N a digit 1-9,
    V a VIN character, X a letter or digit; any other string is a literal (a separator); a
    list or tuple gives the choices of one position."""
    out: list[Segment] = []
    for part in parts:
        if isinstance(part, str):
            out += [_NAMED[ch] for ch in part] if part and set(part) <= _NAMED.keys() else [part]
        else:
            out.append(tuple(part))
    return out


# Passport and identity-card numbers in the shape each issuer uses (weights: share of rows).
DOCUMENT_FORMATS: dict[str, tuple[int, list[Segment]]] = {
    "DE": (18, fmt(tuple("CFGHJK"), *([tuple("CFGHJKLMNPRTVWXYZ0123456789")] * 8))),  # C01X00T47
    "FR": (15, fmt("DD", "LL", "DDDDD")),  # 18AB12345
    "IT": (12, fmt("LL", "DDDDDDD")),  # YA1234567
    "ES": (10, fmt("LLL", "DDDDDD")),  # PAA123456
    "GB": (10, fmt("N", "DDDDDDDD")),  # 123456789
    "US": (8, fmt(list("ACDEF"), "DDDDDDDD")),  # A12345678 (next generation)
    "NL": (6, fmt("LL", "XXXXXX", "D")),  # NW1K2L3M4
    "PL": (6, fmt("LL", "DDDDDDD")),  # EA1234567
    "SE": (4, fmt("DDDDDDDD")),  # 12345678
    "CH": (3, fmt("L", "DDDDDDD")),  # X1234567
    "AT": (3, fmt("L", "DDDDDDD")),  # P1234567
    "BE": (3, fmt("LL", "DDDDDD")),  # EM123456
    "PT": (2, fmt("L", "DDDDDD")),  # C123456
}

# Registration plates as written in each country (separators included; the key drops them).
_FR = tuple("ABCDEFGHJKLMNPRSTVWXYZ")  # no I, O, U
_ES = tuple("BCDFGHJKLMNPRSTVWXYZ")  # consonants only
PLATE_FORMATS: dict[str, tuple[int, list[Segment]]] = {
    "DE": (
        20,
        fmt(
            ["B", "M", "HH", "K", "F", "S", "D", "HB", "DO", "MA", "KA", "N", "L", "DD", "H", "E"],
            "-",
            "LL",
            " ",
            "N",
            "DDD",
        ),
    ),  # HH-AB 1234
    "FR": (14, fmt(_FR, _FR, "-", "DDD", "-", _FR, _FR)),  # AB-123-CD
    "IT": (12, fmt("LL", " ", "DDD", "LL")),  # AB 123CD
    "ES": (10, fmt("DDDD", " ", _ES, _ES, _ES)),  # 1234 BCD
    "GB": (10, fmt("LL", "DD", " ", "LLL")),  # AB12 CDE
    "NL": (7, fmt("LL", "-", "DDD", "-", "L")),  # AB-123-C
    "PL": (7, fmt(["WA", "WB", "KR", "PO", "GD", "WR", "LU", "SZ"], " ", "N", "DDDD")),
    "SE": (5, fmt("LLL", " ", "DDD")),  # ABC 123
    "BE": (5, fmt("N", "-", "LLL", "-", "DDD")),  # 1-ABC-234
    "AT": (4, fmt(["W", "G", "L", "S", "K", "I"], "-", "N", "DDDD", "L")),  # W-12345A
    "CH": (
        3,
        fmt(["ZH", "BE", "GE", "VD", "AG", "SG", "TI", "LU", "BS", "ZG"], " ", "N", "DDDDD"),
    ),  # ZH 123456
    "US": (3, fmt("N", "LLL", "DDD")),  # 7ABC123 (California)
}

MAKERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("WVW", "Volkswagen", ("Golf", "Polo", "Passat", "Tiguan")),
    ("WBA", "BMW", ("320d", "X3", "520d", "118i")),
    ("WDD", "Mercedes-Benz", ("C 220", "E 200", "A 180")),
    ("WAU", "Audi", ("A4", "A6", "Q5", "A3")),
    ("VF1", "Renault", ("Clio", "Mégane", "Captur")),
    ("VF3", "Peugeot", ("208", "308", "3008")),
    ("ZFA", "Fiat", ("Panda", "500", "Tipo")),
    ("VSS", "SEAT", ("Ibiza", "León")),
    ("TMB", "Škoda", ("Octavia", "Fabia", "Superb")),
    ("YV1", "Volvo", ("XC60", "V60", "XC90")),
    ("SAL", "Land Rover", ("Range Rover Evoque", "Discovery")),
    ("JTD", "Toyota", ("Yaris", "Corolla", "RAV4")),
    ("KMH", "Hyundai", ("i30", "Tucson")),
    ("1HG", "Honda", ("Civic", "Accord")),  # North America: the check digit is mandatory
    ("5YJ", "Tesla", ("Model 3", "Model Y")),
    ("WP0", "Porsche", ("911", "Cayenne")),
)
COLOURS = ("black", "white", "silver", "grey", "blue", "red", "green", "brown", "yellow")
GIVEN = (
    "Anna",
    "Lukas",
    "Marie",
    "Jean",
    "Giulia",
    "Marco",
    "Lucía",
    "Javier",
    "Oliver",
    "Emma",
    "Sven",
    "Ingrid",
    "Piotr",
    "Zofia",
    "Sophie",
    "Thomas",
    "Élodie",
    "Jan",
    "María",
    "James",
    "Fatima",
    "Mehmet",
    "Olga",
    "Nikos",
)
FAMILY = (
    "Müller",
    "Schmidt",
    "Martin",
    "Bernard",
    "Rossi",
    "Russo",
    "García",
    "Fernández",
    "Smith",
    "Jones",
    "de Vries",
    "Jansen",
    "Nowak",
    "Kowalski",
    "Andersson",
    "Johansson",
    "Peeters",
    "Gruber",
    "Meier",
    "Silva",
    "Yılmaz",
    "Papadopoulos",
    "Ivanova",
    "Dubois",
)
DOC_REMARKS = (
    "reported at a border crossing",
    "theft from a vehicle",
    "pickpocketing, public transport",
    "declared lost abroad",
    "replaced by a new document",
)
VEH_REMARKS = (
    "keys stolen in a burglary",
    "not returned after rental",
    "stolen from a parking garage",
    "last seen near a port",
    "leasing contract unpaid",
)


def _weighted(
    table: dict[str, tuple[int, list[Segment]]], rng: random.Random
) -> tuple[list[str], list[int], dict[str, Format]]:
    countries = list(table)
    return (
        countries,
        [table[c][0] for c in countries],
        {c: Format(table[c][1], rng) for c in countries},
    )


def _day(rng: random.Random, earliest: date) -> str:
    span = (LAST_DAY - earliest).days
    return (earliest + timedelta(days=rng.randrange(span + 1))).isoformat()


@dataclass(slots=True)
class Plan:
    """What was written, and the criteria of sampled hits (row index → criteria)."""

    rows: int
    hit_rows: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    per_country: dict[str, int] = field(default_factory=dict)
    bytes_written: int = 0


class Documents:
    """Travel documents: `rows(n)` yields import rows; `misses(n)` criteria certainly absent."""

    category = "travel_documents"

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"documents/{seed}")
        self.countries, self.weights, self.formats = _weighted(DOCUMENT_FORMATS, self.rng)
        self.used: dict[str, int] = dict.fromkeys(self.countries, 0)

    def row(self) -> dict[str, Any]:
        rng = self.rng
        country = rng.choices(self.countries, self.weights)[0]
        k = self.used[country]
        self.used[country] = k + 1
        doc_type = rng.choices(("P", "I", "PD"), (85, 12, 3))[0]
        row: dict[str, Any] = {
            "number": self.formats[country].number(k),
            "country": country,
            "document_type": doc_type,
            "status": rng.choices(("stolen", "lost", "revoked", "invalidated"), (45, 50, 3, 2))[0],
            "reported_on": _day(rng, date(2012, 1, 1)),
        }
        if rng.random() < 0.7:
            row["holder_name"] = f"{rng.choice(FAMILY).upper()} {rng.choice(GIVEN)}"
        if rng.random() < 0.1:
            row["remarks"] = rng.choice(DOC_REMARKS)
        return row

    @staticmethod
    def hit_criteria(row: dict[str, Any]) -> list[dict[str, str]]:
        return [{"number": row["number"], "country": row["country"]}]

    def misses(self, n: int, rng: random.Random) -> list[dict[str, str]]:
        out = []
        for _ in range(n):
            country = rng.choices(self.countries, self.weights)[0]
            f = self.formats[country]
            out.append(
                {"number": f.number(rng.randrange(self.used[country], f.space)), "country": country}
            )
        return out


class Vehicles:
    """Vehicles: VIN for 92 %, a plate with its country for 88 %, always at least one."""

    category = "vehicles"
    # VIN positions 11-17 (plant and serial): unique per vehicle, over 33 × 10^6 values.
    _SERIAL = fmt("V", "DDDDDD")

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"vehicles/{seed}")
        self.countries, self.weights, self.formats = _weighted(PLATE_FORMATS, self.rng)
        self.used: dict[str, int] = dict.fromkeys(self.countries, 0)
        self.serials = Format(self._SERIAL, self.rng)
        self.vins_used = 0

    def vin(self, k: int, rng: random.Random, year: int, wmi: str) -> str:
        vds = "".join(rng.choices(VIN_CHARS, k=5))
        partial = f"{wmi}{vds}0{_YEAR_CODES[(year - 1980) % 30]}{self.serials.number(k)}"
        check = vin_check_digit(partial)  # position 9 has weight 0: its content is irrelevant
        return partial[:8] + check + partial[9:]

    def row(self) -> dict[str, Any]:
        rng = self.rng
        year = rng.randrange(2000, 2025)
        has_vin = rng.random() < 0.92
        has_plate = not has_vin or rng.random() < 0.87
        wmi, make, models = rng.choice(MAKERS)
        row: dict[str, Any] = {}
        if has_vin:
            row["vin"] = self.vin(self.vins_used, rng, year, wmi)
            self.vins_used += 1
        if has_plate:
            country = rng.choices(self.countries, self.weights)[0]
            k = self.used[country]
            self.used[country] = k + 1
            row["plate"] = self.formats[country].number(k)
            row["plate_country"] = country
        row.update(
            make=make,
            model=rng.choice(models),
            colour=rng.choice(COLOURS),
            year=year,
            stolen_on=_day(rng, date(max(year, 2015), 1, 1)),
            status=rng.choices(("stolen", "embezzled", "missing"), (80, 12, 8))[0],
        )
        if rng.random() < 0.5:
            row["owner_name"] = f"{rng.choice(FAMILY).upper()} {rng.choice(GIVEN)}"
        if rng.random() < 0.1:
            row["remarks"] = rng.choice(VEH_REMARKS)
        return row

    @staticmethod
    def hit_criteria(row: dict[str, Any]) -> list[dict[str, str]]:
        """One by VIN and one by plate + country, as far as the row has them."""
        out = []
        if "vin" in row:
            out.append({"vin": row["vin"]})
        if "plate" in row:
            out.append({"plate": row["plate"], "country": row["plate_country"]})
        return out

    def misses(self, n: int, rng: random.Random) -> list[dict[str, str]]:
        """Half VINs and half plates that no row has."""
        out = []
        for i in range(n):
            if i % 2 == 0:
                k = rng.randrange(self.vins_used, self.serials.space)
                out.append(
                    {"vin": self.vin(k, rng, rng.randrange(2000, 2025), rng.choice(MAKERS)[0])}
                )
            else:
                country = rng.choices(self.countries, self.weights)[0]
                f = self.formats[country]
                out.append(
                    {
                        "plate": f.number(rng.randrange(self.used[country], f.space)),
                        "country": country,
                    }
                )
        return out


Source = Documents | Vehicles


def write_ndjson(source: Source, path: Path, rows: int, sample: int) -> Plan:
    """`rows` rows as NDJSON; the criteria of `sample` rows picked at random are kept."""
    picked = set(
        random.Random(f"sample/{source.category}/{rows}").sample(range(rows), min(sample, rows))
    )
    plan = Plan(rows=rows)
    dumps = orjson.dumps
    with path.open("wb", buffering=1 << 20) as fh:
        for i in range(rows):
            row = source.row()
            line = dumps(row) + b"\n"
            fh.write(line)
            plan.bytes_written += len(line)
            if i in picked:
                plan.hit_rows[i] = source.hit_criteria(row)
    plan.per_country = {c: n for c, n in source.used.items() if n}
    return plan
