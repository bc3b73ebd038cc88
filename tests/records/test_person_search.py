"""Person search by name through a real store (SQLite and PostgreSQL), and between two nodes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from support.databases import DatabaseUrl

from connector.demo import DemoNode, network
from connector.inbound.answering import passing
from connector.outbound.request import Request
from connector.protocol import Check
from connector.records.criteria import parse_criteria
from connector.records.importer import import_stream
from connector.records.kinds.base import KeyQuery
from connector.records.store import RecordStore
from connector.settings.config import DEFAULT_HIT_THRESHOLD, Matching
from connector.vocabulary import AgencyKind, Category, Purpose

WANTED = Category.WANTED_PERSONS
PEOPLE: list[dict[str, Any]] = [
    {
        "id": "DE-1",
        "first_name": "Иван",
        "middle_name": "Сергеевич",
        "last_name": "Щербаков",
        "birth_date": "1980-02-11",
        "nationality": ["RU"],
        "sex": "male",
        "document_number": ["75 1234567"],
        "warrant_country": "DE",
        "charges": ["fraud"],
    },
    {
        "id": "DE-2",
        "first_name": "Hans",
        "last_name": "Müller",
        "birth_date": "1975",
        "nationality": ["DE"],
        "warrant_country": "DE",
    },
    {
        "id": "DE-3",
        "name_original_script": "محمد عبد الرحمن",
        "first_name": "Mohamed",
        "last_name": "Abdelrahman",
        "birth_date": "1990-05-01",
        "warrant_country": "DE",
    },
    {
        "id": "DE-4",
        "first_name": "小明",
        "last_name": "王",
        "birth_date": "1985-11-02",
        "warrant_country": "DE",
    },
    {
        "id": "DE-5",
        "first_name": "Ευάγγελος",
        "last_name": "Παπαδόπουλος",
        "birth_date": "1969",
        "warrant_country": "DE",
    },
]


def load(store: RecordStore, rows: list[dict[str, Any]]) -> None:
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    report = import_stream(store, io.BytesIO(data), category=WANTED, fmt="ndjson")
    assert report.rejected == 0, report.errors


@pytest.fixture
def store(db_url: DatabaseUrl) -> Iterator[RecordStore]:
    s = RecordStore.open(db_url("records"))
    load(s, PEOPLE)
    yield s
    s.close()


def search(store: RecordStore, criteria: dict[str, Any]) -> list[tuple[str, float]]:
    parsed = parse_criteria(WANTED, criteria)
    found = passing(
        store.kind(WANTED), parsed, store.search_now(WANTED, parsed, 10), DEFAULT_HIT_THRESHOLD
    )
    return [(m.record.id, m.score) for m in found]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"name": "Chtcherbakov Ivan", "birth_date": "1980"}, "DE-1"),
        ({"first_name": "Iwan", "last_name": "Schtscherbakow", "birth_date": "1980-02-11"}, "DE-1"),
        ({"name": "Hans Mueller"}, "DE-2"),
        ({"name": "Muhammad Abdul Rahman", "birth_date": "1990"}, "DE-3"),
        ({"name": "محمد عبد الرحمن"}, "DE-3"),
        ({"name": "Wang Xiaoming"}, "DE-4"),
        ({"name": "Xiao-Ming Wang", "birth_date": "1985-11"}, "DE-4"),
        ({"name": "Papadopoulos Evangelos"}, "DE-5"),
    ],
)
def test_found_across_scripts(store: RecordStore, criteria: dict[str, Any], expected: str) -> None:
    found = search(store, criteria)
    assert found, criteria
    assert found[0][0] == expected, found


@pytest.mark.parametrize(
    "criteria",
    [
        {"name": "Petrov"},
        {"name": "Shcherbakov Ivan", "birth_date": "1960"},
        {"name": "Li Wei"},
        # A namesake: the name agrees, the full birth date does not.
        {"name": "Ivan Shcherbakov", "birth_date": "1980-03-11"},
        {"name": "Hans Müller", "birth_date": "1957-05-05"},
    ],
)
def test_below_the_threshold_is_no_hit(store: RecordStore, criteria: dict[str, Any]) -> None:
    assert search(store, criteria) == []


def keys_of(store: RecordStore, record_id: str) -> int:
    table = store.key_tables[WANTED]
    return int(
        store._conn.execute(
            select(func.count()).select_from(table).where(table.c.record_id == record_id)
        ).scalar_one()
    )


def test_keys_follow_updates_and_removals(store: RecordStore) -> None:
    assert keys_of(store, "DE-2") > 0
    # A renamed person is no longer found by the old name, and is by the new one.
    load(store, [{**PEOPLE[1], "last_name": "Schmidt"}])
    assert search(store, {"name": "Hans Mueller"}) == []
    assert search(store, {"name": "Hans Schmidt"})[0][0] == "DE-2"
    assert store.remove(WANTED, "DE-2")
    assert keys_of(store, "DE-2") == 0
    assert store.remove_except(WANTED, {"DE-1"}) == 3
    assert sum(keys_of(store, f"DE-{i}") for i in (3, 4, 5)) == 0
    assert keys_of(store, "DE-1") > 0


def test_a_common_key_is_bounded(db_url: DatabaseUrl) -> None:
    """Six hundred Müllers: a query scores at most `candidates` of them, never all."""
    s = RecordStore.open(db_url("many"))
    load(
        s,
        [
            {
                "id": f"M-{i}",
                "first_name": f"Name{i}",
                "last_name": "Müller",
                "warrant_country": "DE",
            }
            for i in range(600)
        ],
    )
    kind = s.kind(WANTED)
    assert kind is not None
    query = KeyQuery(keys=("s:mlr",), per_key=200, candidates=50)
    assert s._key_search(s._conn, WANTED, kind, query)[0]
    assert len(s._key_search(s._conn, WANTED, kind, query)[0]) == 50
    # A rarer key wins over the common one.
    found = search(s, {"name": "Name421 Müller"})
    assert found[0][0] == "M-421"
    assert len(s.search_now(WANTED, parse_criteria(WANTED, {"name": "Müller"}), 10)) <= 10


async def test_a_name_the_store_holds_often_is_not_read_as_a_misspelling(
    db_url: DatabaseUrl,
) -> None:
    """Malika is held a dozen times, so a check for Malika Urbain is less likely a misspelt
    Malik Urbain: the same record scores lower than where Malika is no name of its own —
    through the sync path and the serving path alike."""
    urbain = {"id": "FR-1", "first_name": "Malik", "last_name": "Urbain", "warrant_country": "FR"}
    rare = RecordStore.open(db_url("rare"), serving=True)
    common = RecordStore.open(db_url("common"), serving=True)
    try:
        load(rare, [urbain])
        load(
            common,
            [
                urbain,
                *(
                    {
                        "id": f"FR-{i}",
                        "first_name": "Malika",
                        "last_name": f"Name{i}",
                        "warrant_country": "FR",
                    }
                    for i in range(2, 14)
                ),
            ],
        )
        criteria = parse_criteria(WANTED, {"name": "Malika Urbain"})
        for way in ("now", "serving"):
            scores = []
            for s in (rare, common):
                found = (
                    s.search_now(WANTED, criteria, 10)
                    if way == "now"
                    else await s.search(WANTED, criteria, 10)
                )
                scores.append(next(m.score for m in found if m.record.id == "FR-1"))
            assert scores[0] >= DEFAULT_HIT_THRESHOLD > scores[1], (way, scores)
        # A name spelt as held loses nothing however common it is.
        exact = parse_criteria(WANTED, {"name": "Malik Urbain"})
        assert common.search_now(WANTED, exact, 1)[0].score == 1.0
    finally:
        await rare.aclose()
        await common.aclose()


def test_threshold_is_configured_per_category() -> None:
    matching = Matching.model_validate({"hit_threshold": {"terrorism_suspects": 0.7}})
    assert matching.threshold(Category.TERRORISM_SUSPECTS) == 0.7
    assert matching.threshold(WANTED) == DEFAULT_HIT_THRESHOLD


POLICY = """\
inbound:
  - name: persons, summary for FR
    from: [FR]
    categories: [wanted_persons]
    answer: summary
  - name: persons, hit for IT
    from: [IT]
    categories: [wanted_persons]
    answer: hit
outbound:
  - agency: ncb
    to: "*"
"""


def configure(node_id: str, directory: Path) -> None:
    (directory / "policies" / "10-demo.yaml").write_text(POLICY)


async def ask(net: dict[str, DemoNode], src: str, criteria: dict[str, Any]) -> Any:
    request = Request(
        agency="ncb",
        agency_kind=AgencyKind.NCB,
        sub="ncb/1",
        purpose=Purpose.BORDER_CONTROL,
        case=None,
        checks=(Check(id="p", category=WANTED, criteria=criteria),),
    )
    async with net[src].node.desk() as desk:
        ex = await desk.ask(request, "DE")
    (result,) = ex.answer.results
    return result


async def test_person_check_between_two_nodes(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE", "IT"], configure) as net:
        store = net["DE"].node.open_records()
        try:
            load(store, PEOPLE)
        finally:
            store.close()
        criteria = {"name": "Chtcherbakov Ivan", "birth_date": "1980", "nationality": "RU"}
        summary = await ask(net, "FR", criteria)
        assert summary.status == "hit"
        (hit,) = summary.hits
        assert hit.ref == "DE:wanted_persons:DE-1"
        assert 0.85 <= hit.score < 1.0
        assert hit.record["last_name"] == "Щербаков"
        assert "document_number" not in hit.record
        assert "middle_name" not in hit.record
        reasons = list(hit.reasons or [])
        assert {
            "field": "last_name",
            "part": "chtcherbakov",
            "match": "transliteration",
            "matched": "shcherbakov",
            "similarity": 0.93,
        } in reasons
        assert {"field": "birth_date", "match": "compatible_year"} in reasons
        assert {"field": "nationality", "match": "exact"} in reasons
        # The middle name is not shown at summary: no reason may name it.
        assert all(r["field"] != "middle_name" for r in reasons)
        # At `hit` level: the hit and its ref, nothing else.
        bare = await ask(net, "IT", criteria)
        assert bare.status == "hit"
        (hit,) = bare.hits
        assert (hit.score, dict(hit.record), hit.reasons) == (1.0, {}, None)
        # A person not held: no hit at any level.
        assert (await ask(net, "IT", {"name": "Ivan Petrov"})).status == "no_hit"
        assert (
            await ask(net, "FR", {"name": "Ivan Petrov", "birth_date": "1980"})
        ).status == "no_hit"
