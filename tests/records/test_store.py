"""The generic record store: upsert by natural key, lookups, full-text search, removal."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from support.databases import DatabaseUrl

from connector.records.kinds.base import KeyColumn, Kind, Lookup, Record, TextQuery
from connector.records.store import RecordStore, make_engine
from connector.vocabulary import Category


class Notes(Kind):
    """A made-up kind: a code key and free text, to test the store without a real model."""

    category = Category.ARTWORKS
    key_columns = (KeyColumn(name="code", length=16),)
    natural_key = ("code",)
    indexes = (("code",),)
    csv_required = frozenset({"code"})
    text_fields = ("title", "description")

    def parse_row(self, raw: Mapping[str, Any]) -> Record:
        return Record(
            id=str(raw["code"]),
            category=self.category,
            keys={"code": raw["code"]},
            fields=dict(raw),
        )

    def parse_criteria(self, raw: Mapping[str, object]) -> Mapping[str, object]:
        return raw

    def lookups(self, criteria: Mapping[str, object]) -> Sequence[Lookup]:
        if "text" in criteria:
            return (TextQuery(words=tuple(str(criteria["text"]).split())),)
        return ({"code": str(criteria["code"])},)


@pytest.fixture
def store(db_url: DatabaseUrl) -> Iterator[RecordStore]:
    s = RecordStore(make_engine(db_url("r")), kinds={Category.ARTWORKS: Notes()})
    s.create_schema()
    yield s
    s.close()


def rec(code: str, title: str, description: str = "") -> Record:
    return Notes().parse_row({"code": code, "title": title, "description": description})


def test_upsert_counts_and_updates(store: RecordStore) -> None:
    first = store.upsert(Category.ARTWORKS, [rec("A", "Le Pont"), rec("B", "La Gare")])
    assert (first.inserted, first.updated) == (2, 0)
    second = store.upsert(
        Category.ARTWORKS,
        [rec("A", "Le Pont d'Argenteuil"), rec("C", "Nympheas"), rec("C", "Nymphéas")],
    )
    assert (second.inserted, second.updated) == (1, 2)
    assert store.count(Category.ARTWORKS) == 3
    got = store.get(Category.ARTWORKS, "C")
    assert got is not None
    assert got.fields["title"] == "Nymphéas"


def test_a_row_held_as_given_is_unchanged_not_updated(store: RecordStore) -> None:
    """Re-importing what is held writes nothing and says so; one changed field is an update."""
    store.upsert(Category.ARTWORKS, [rec("A", "Le Pont"), rec("B", "La Gare")])
    again = store.upsert(Category.ARTWORKS, [rec("A", "Le Pont"), rec("B", "La Gare")])
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    mixed = store.upsert(
        Category.ARTWORKS, [rec("A", "Le Pont"), rec("B", "La Gare Saint-Lazare"), rec("D", "x")]
    )
    assert (mixed.inserted, mixed.updated, mixed.unchanged) == (1, 1, 1)
    got = store.get(Category.ARTWORKS, "B")
    assert got is not None
    assert got.fields["title"] == "La Gare Saint-Lazare"


def test_text_search_ranks_and_follows_updates_and_removal(store: RecordStore) -> None:
    store.upsert(
        Category.ARTWORKS,
        [
            rec("A", "Le Pont d'Argenteuil", "Claude Monet, oil on canvas"),
            rec("B", "Impression, soleil levant", "Monet"),
            rec("C", "Les Nymphéas", "water lilies by Claude Monet"),
        ],
    )
    hits = store.search_now(Category.ARTWORKS, {"text": "monet claude"}, 10)
    # Records with all the words, when there are any …
    assert {m.record.id for m in hits} == {"A", "C"}
    assert all(0 < m.score <= 1 for m in hits)
    # … else records with any of them, those with more of the words first.
    loose = store.search_now(Category.ARTWORKS, {"text": "monet claude scream"}, 10)
    assert {m.record.id for m in loose[:2]} == {"A", "C"}
    assert [m.record.id for m in loose[2:]] == ["B"]
    assert loose[2].score < loose[1].score
    # Diacritics folded: "nympheas" finds "Nymphéas".
    assert [m.record.id for m in store.search_now(Category.ARTWORKS, {"text": "nympheas"}, 10)] == [
        "C"
    ]
    store.upsert(Category.ARTWORKS, [rec("C", "Untitled", "nothing known")])
    assert store.search_now(Category.ARTWORKS, {"text": "nympheas"}, 10) == []
    assert store.remove(Category.ARTWORKS, "A")
    assert [
        m.record.id for m in store.search_now(Category.ARTWORKS, {"text": "argenteuil"}, 10)
    ] == []
    assert store.remove_except(Category.ARTWORKS, {"B"}) == 1
    assert [m.record.id for m in store.search_now(Category.ARTWORKS, {"text": "monet"}, 10)] == [
        "B"
    ]
    # Greek accents fold too (FTS5's own folding leaves the tonos).
    store.upsert(Category.ARTWORKS, [rec("G", "Παναγία Οδηγήτρια")])
    assert [m.record.id for m in store.search_now(Category.ARTWORKS, {"text": "παναγια"}, 10)] == [
        "G"
    ]


@pytest.mark.parametrize("text", ['monet" OR "x', "NEAR(monet)", "*", "title:monet", "-monet"])
def test_text_search_treats_input_as_words_never_syntax(store: RecordStore, text: str) -> None:
    store.upsert(Category.ARTWORKS, [rec("A", "Monet")])
    store.search_now(Category.ARTWORKS, {"text": text}, 10)  # no FTS syntax error


def test_lookup_by_key(store: RecordStore) -> None:
    store.upsert(Category.ARTWORKS, [rec("A", "x"), rec("B", "y")])
    assert [m.record.id for m in store.search_now(Category.ARTWORKS, {"code": "B"}, 5)] == ["B"]
    assert store.search_now(Category.ARTWORKS, {"code": "Z"}, 5) == []


def test_biometric_kinds_import_and_refuse_what_does_not_read(db_url: DatabaseUrl) -> None:
    import io

    from connector.errors import InvalidCriteria
    from connector.records.criteria import parse_criteria
    from connector.records.importer import import_stream
    from connector.records.store import RecordStore

    store = RecordStore.open(db_url("b"))
    six = '"D3S1358": "15", "vWA": "16,17", "D21S11": "29,30", "D18S51": "14,15", "FGA": "22,23"'
    try:
        data = (
            b'{"id": "S-1", "loci": {"D8S1179": "13, 14", "TH01": "9.3", %s}}\n'
            b'{"id": "S-2", "loci": {"D8S1179": "thirteen"}}\n'
            b'{"id": "S-3", "loci": {}}\n'
        ) % six.encode()
        report = import_stream(
            store, io.BytesIO(data), category=Category.DNA_PROFILES, fmt="ndjson"
        )
        assert (report.inserted, report.rejected) == (1, 2)
        assert "loci.D8S1179: 'thirteen' is not an allele" in report.errors[0].reason
        got = store.get(Category.DNA_PROFILES, "S-1")
        assert got is not None
        assert got.fields["loci"]["D8S1179"] == "13,14"
        assert got.fields["loci"]["TH01"] == "9.3,9.3"
        # A fingerprint check needs a template that reads.
        with pytest.raises(InvalidCriteria) as short:
            parse_criteria(Category.FINGERPRINTS, {"template": "x"})
        assert short.value.field == "template"
        with pytest.raises(InvalidCriteria):
            store.kinds[Category.FINGERPRINTS].parse_criteria({})
    finally:
        store.close()


async def test_every_batch_is_committed_and_found_by_a_serving_node(db_url: DatabaseUrl) -> None:
    """Batches written by an import must be visible to another connection — a node's — at
    once, whichever path the backend writes them by."""
    from connector.records.kinds.registry import KINDS

    url = db_url("batches")
    kind = KINDS[Category.TRAVEL_DOCUMENTS]
    writer = RecordStore.open(url)
    try:
        for batch in range(3):
            writer.upsert(
                Category.TRAVEL_DOCUMENTS,
                [
                    kind.parse_row(
                        {"number": f"B{batch}X{i:05d}", "country": "DE", "status": "stolen"}
                    )
                    for i in range(50)
                ],
            )
            reader = RecordStore.open(url, serving=True)
            try:
                assert reader.count(Category.TRAVEL_DOCUMENTS) == 50 * (batch + 1)
                criteria = kind.parse_criteria({"number": f"B{batch}X00049", "country": "DE"})
                assert len(await reader.search(Category.TRAVEL_DOCUMENTS, criteria, 10)) == 1
            finally:
                await reader.aclose()
    finally:
        writer.close()
