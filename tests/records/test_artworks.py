"""Artworks: import (NDJSON and CSV), ranked text search, ref and artist lookups, bad rows."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from support.databases import DatabaseUrl

from connector.errors import ImportFileError, InvalidCriteria
from connector.records.categories import fields_of
from connector.records.importer import import_stream
from connector.records.kinds.artworks import Artworks, normalise_artist, words_of
from connector.records.kinds.base import Match, TextQuery
from connector.records.store import RecordStore, make_engine
from connector.vocabulary import Category

ART = Category.ARTWORKS
KIND = Artworks()

COLLECTION: list[dict[str, Any]] = [
    {
        "id": "FR-OCBC-2019-0001",
        "artist": "Claude Monet",
        "object_type": "painting",
        "title": {
            "fr": "Le Pont d'Argenteuil",
            "en": "The Bridge at Argenteuil",
            "de": "Die Brücke von Argenteuil",
        },
        "materials": "oil on canvas",
        "dimensions": "60 x 80 cm",
        "period": "1874",
        "description": "The road bridge over the Seine at Argenteuil, sailing boats moored "
        "in the foreground.",
        "stolen_on": "2019-03-04",
        "stolen_from": "Musée municipal, Vernon, France",
    },
    {
        "id": "FR-OCBC-2019-0002",
        "artist": "Claude Monet",
        "object_type": "painting",
        "title": {"fr": "Les Nymphéas", "en": "Water Lilies"},
        "materials": "oil on canvas",
        "period": "1914-1917",
        "description": "Water lilies on the pond of the garden at Giverny, evening light.",
        "stolen_on": "2019-03-04",
        "stolen_from": "Musée municipal, Vernon, France",
    },
    {
        "id": "FR-OCBC-2020-0017",
        "artist": "Claude Monet",
        "object_type": "painting",
        "title": "Impression, soleil levant",
        "description": "The harbour of Le Havre at sunrise, seen through the morning mist.",
    },
    {
        "id": "NO-KRIPOS-2004-88",
        "artist": "Edvard Munch",
        "object_type": "painting",
        "title": {"no": "Skrik", "en": "The Scream", "de": "Der Schrei"},
        "materials": "tempera and crayon on cardboard",
        "dimensions": "83.5 x 66 cm",
        "description": "A figure with an agonised face before a blood-red sky over the fjord.",
        "stolen_on": "2004-08-22",
        "stolen_from": "Munch Museum, Oslo",
    },
    {
        "id": "CZ-PCR-2011-0042",
        "artist": "František Kupka",
        "object_type": "painting",
        "title": {"cs": "Amorfa, dvoubarevná fuga", "fr": "Amorpha, fugue à deux couleurs"},
        "description": "Abstract composition of interlocking red and blue discs.",
        "stolen_on": "2011-11-02",
        "stolen_from": "Private collection, Praha",
    },
    {
        "id": "ES-BPH-2016-0311",
        "artist": "Joaquín Sorolla",
        "object_type": "painting",
        "title": "Paseo a orillas del mar",
        "description": "Two women dressed in white walking along the beach at Valencia.",
        "stolen_on": "2016-07-14",
        "stolen_from": "Galería privada, Valencia",
    },
    {
        "id": "PL-KGP-2013-0007",
        "artist": "Józef Chełmoński",
        "object_type": "painting",
        "title": {"pl": "Babie lato", "en": "Indian Summer"},
        "description": "A young shepherdess lying in a meadow, a thread of gossamer in her hand.",
    },
    {
        "id": "PL-KGP-2013-0008",
        "artist": "Józef  Chełmoński",
        "object_type": "painting",
        "title": {"pl": "Bociany", "en": "Storks"},
        "description": "Peasants resting in a field watch a flight of storks.",
    },
    {
        "id": "GR-HP-2012-0101",
        "object_type": "icon",
        "title": "Παναγία Οδηγήτρια",
        "materials": "tempera and gold leaf on wood",
        "period": "16th century",
        "description": "Post-Byzantine icon of the Virgin Hodegetria from a Cretan workshop.",
    },
    {
        "id": "GR-HP-2012-0102",
        "object_type": "coin",
        "title": "Tetradrachm of Athens",
        "materials": "silver",
        "dimensions": "24 mm, 17.2 g",
        "period": "5th century BC",
        "description": "Head of Athena on the obverse, the owl and olive sprig on the reverse.",
    },
    {
        "id": "DE-BKA-2008-0555",
        "object_type": "manuscript",
        "title": {"de": "Evangeliar aus Echternach", "la": "Evangelium Epternacense"},
        "materials": "ink and gold on parchment",
        "period": "11th century",
        "description": "Illuminated gospel book, four leaves cut out of the codex.",
    },
    {
        "id": "FR-OCBC-2009-0440",
        "artist": "Auguste Rodin",
        "object_type": "sculpture",
        "title": "L'Âge d'airain",
        "materials": "bronze",
        "dimensions": "height 64 cm",
        "description": "Reduction of the standing nude of a young man, sand cast.",
    },
    {
        "id": "FR-OCBC-2009-0441",
        "artist": "Auguste Rodin",
        "object_type": "sculpture",
        "title": "Le Penseur",
        "materials": "bronze",
        "description": "Small cast of the seated thinker, chin resting on his hand.",
    },
    {
        "id": "NL-NP-2020-0330",
        "artist": "Unknown, Dutch school",
        "object_type": "painting",
        "title": "River landscape with a bridge",
        "description": "A bridge over a river at dusk, painted in the manner of Claude Monet.",
    },
    {
        "id": "DE-BKA-2017-0012",
        "artist": "Caspar David Friedrich",
        "object_type": "painting",
        "title": {"de": "Der Wanderer über dem Nebelmeer", "en": "Wanderer above the Sea of Fog"},
        "description": "A man with a walking stick on a rocky height above a sea of fog.",
    },
]


def ndjson(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


@pytest.fixture
def store(db_url: DatabaseUrl) -> Iterator[RecordStore]:
    s = RecordStore(make_engine(db_url("art")), kinds={ART: KIND})
    s.create_schema()
    yield s
    s.close()


@pytest.fixture
def collection(store: RecordStore) -> RecordStore:
    report = import_stream(store, io.BytesIO(ndjson(COLLECTION)), category=ART, fmt="ndjson")
    assert (report.inserted, report.updated, report.rejected) == (len(COLLECTION), 0, 0)
    return store


def search(store: RecordStore, limit: int = 10, **criteria: str) -> list[Match]:
    return store.search_now(ART, KIND.parse_criteria(criteria), limit)


def ids(matches: list[Match]) -> list[str]:
    return [m.record.id for m in matches]


def test_import_keeps_fields_and_keys(collection: RecordStore) -> None:
    got = collection.get(ART, "PL-KGP-2013-0008")
    assert got is not None
    assert got.keys == {"ref_key": "PL-KGP-2013-0008", "artist_key": "jozef chelmonski"}
    assert got.fields["title"] == {"pl": "Bociany", "en": "Storks"}
    coin = collection.get(ART, "GR-HP-2012-0102")
    assert coin is not None
    assert coin.keys["artist_key"] is None
    assert "artist" not in coin.fields
    monet = collection.get(ART, "FR-OCBC-2019-0001")
    assert monet is not None
    assert monet.fields["stolen_on"] == "2019-03-04"
    for item in COLLECTION:
        record = collection.get(ART, item["id"])
        assert record is not None
        assert set(record.fields) <= fields_of(ART)
        assert "id" not in record.fields


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("argenteuil pont", "FR-OCBC-2019-0001"),  # title words in another order
        ("Le Pont d'Argenteuil", "FR-OCBC-2019-0001"),
        ("soleil levant monet", "FR-OCBC-2020-0017"),
        ("joaquin sorolla", "ES-BPH-2016-0311"),  # artist without accents
        ("frantisek kupka", "CZ-PCR-2011-0042"),
        ("nympheas", "FR-OCBC-2019-0002"),  # title without accents
        ("giverny", "FR-OCBC-2019-0002"),  # a description word
        ("owl athena", "GR-HP-2012-0102"),
        ("gossamer", "PL-KGP-2013-0007"),
        ("penseur rodin", "FR-OCBC-2009-0441"),
        ("age airain", "FR-OCBC-2009-0440"),
        ("Οδηγήτρια", "GR-HP-2012-0101"),  # Greek script
        ("ΠΑΝΑΓΊΑ", "GR-HP-2012-0101"),  # ... in capitals (SQLite keeps Greek accents)
    ],
)
def test_realistic_queries_put_the_right_work_first(
    collection: RecordStore, text: str, first: str
) -> None:
    hits = search(collection, text=text)
    assert hits, text
    assert hits[0].record.id == first
    assert all(0 < m.score <= 1 for m in hits)


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Der Schrei", "NO-KRIPOS-2004-88"),
        ("schrei", "NO-KRIPOS-2004-88"),
        ("skrik", "NO-KRIPOS-2004-88"),
        ("the scream", "NO-KRIPOS-2004-88"),
        ("Brücke Argenteuil", "FR-OCBC-2019-0001"),
        ("brucke von argenteuil", "FR-OCBC-2019-0001"),
        ("wanderer nebelmeer", "DE-BKA-2017-0012"),
        ("evangelium epternacense", "DE-BKA-2008-0555"),
        ("fugue deux couleurs", "CZ-PCR-2011-0042"),
    ],
)
def test_a_title_in_any_of_its_languages_finds_the_work(
    collection: RecordStore, text: str, first: str
) -> None:
    assert ids(search(collection, text=text))[:1] == [first]


def test_reasons_say_where_the_words_were_found(collection: RecordStore) -> None:
    hit = search(collection, text="pont argenteuil")[0]
    assert hit.score == 1.0
    assert hit.reasons == (
        {"field": "title", "words": ["pont", "argenteuil"]},
        {"field": "description", "words": ["argenteuil"]},
    )
    lilies = search(collection, text="monet giverny")[0]
    assert lilies.record.id == "FR-OCBC-2019-0002"
    assert lilies.reasons == (
        {"field": "artist", "words": ["monet"]},
        {"field": "description", "words": ["giverny"]},
    )


def test_words_only_in_the_description_rank_below_title_and_artist(collection: RecordStore) -> None:
    hits = search(collection, text="claude monet")
    monets = {"FR-OCBC-2019-0001", "FR-OCBC-2019-0002", "FR-OCBC-2020-0017"}
    assert set(ids(hits)[:3]) == monets
    assert ids(hits)[3:] == ["NL-NP-2020-0330"]  # "in the manner of Claude Monet"
    assert hits[3].score <= 0.5 < min(m.score for m in hits[:3])
    assert hits[3].reasons == ({"field": "description", "words": ["claude", "monet"]},)
    # One word of two in the title keeps full marks; none keeps half.
    bridge = search(collection, text="bridge river")
    assert ids(bridge)[0] == "NL-NP-2020-0330"
    assert bridge[0].score == 1.0


def test_ref_lookup(collection: RecordStore) -> None:
    hits = search(collection, ref="NO-KRIPOS-2004-88")
    assert ids(hits) == ["NO-KRIPOS-2004-88"]
    assert hits[0].score == 1.0
    assert hits[0].reasons == ({"field": "ref", "exact": True},)
    assert search(collection, ref="NO-KRIPOS-2004-89") == []
    assert search(collection, ref="no-kripos-2004-88") == []  # the reference as issued
    # With other criteria, the ref still comes first.
    both = search(collection, ref="GR-HP-2012-0102", text="scream")
    assert ids(both)[:1] == ["GR-HP-2012-0102"]
    assert "NO-KRIPOS-2004-88" in ids(both)


def test_artist_lookup(collection: RecordStore) -> None:
    hits = search(collection, artist="Claude Monet")
    assert set(ids(hits)[:3]) == {"FR-OCBC-2019-0001", "FR-OCBC-2019-0002", "FR-OCBC-2020-0017"}
    assert [m.score for m in hits[:3]] == [1.0, 1.0, 1.0]
    assert hits[0].reasons == ({"field": "artist", "words": ["claude", "monet"], "exact": True},)
    assert ids(hits)[3:] == ["NL-NP-2020-0330"]
    assert hits[3].score <= 0.5
    # The artist key folds what the text index does not (ł), and spacing: both works.
    polish = search(collection, artist="jozef   chelmonski")
    assert sorted(ids(polish)) == ["PL-KGP-2013-0007", "PL-KGP-2013-0008"]
    assert all(m.score == 1.0 for m in polish)
    # Only the surname: found through the text index, in the artist field.
    assert sorted(ids(search(collection, artist="rodin"))) == [
        "FR-OCBC-2009-0440",
        "FR-OCBC-2009-0441",
    ]
    assert search(collection, artist="Rembrandt") == []


def test_title_and_artist_together(collection: RecordStore) -> None:
    hits = search(collection, title="nympheas", artist="monet")
    assert ids(hits)[0] == "FR-OCBC-2019-0002"
    assert hits[0].score == 1.0
    hits = search(collection, title="Babie lato", artist="Józef Chełmoński")
    assert ids(hits) == ["PL-KGP-2013-0007", "PL-KGP-2013-0008"]
    assert hits[1].score == 0.5  # the right artist, not the title asked for
    # Title words found only in a description count for less than in the title.
    giverny = search(collection, title="giverny")
    assert ids(giverny) == ["FR-OCBC-2019-0002"]
    assert giverny[0].score == 0.5
    assert giverny[0].reasons == ({"field": "description", "words": ["giverny"]},)
    bridge = search(collection, title="bridge")
    assert set(ids(bridge)) == {"FR-OCBC-2019-0001", "NL-NP-2020-0330"}


def test_csv_title_columns_merge_into_one_title(store: RecordStore) -> None:
    data = (
        "id,title,title_fr,title_DE,artist,object_type,stolen_on\n"
        "AT-BK-1,Der Kuss,Le Baiser,,Gustav Klimt,painting,2015-05-01\n"
        "AT-BK-2,Häuser am Meer,,,Egon Schiele,painting,\n"
        "AT-BK-3,,La Vierge,Die Jungfrau,Gustav Klimt,painting,\n"
        "AT-BK-4,Wally,Wally,Bildnis Wally,Egon Schiele,painting,\n"
        "AT-BK-5,,,,Egon Schiele,drawing,\n"
    ).encode()
    report = import_stream(store, io.BytesIO(data), category=ART, fmt="csv")
    assert (report.inserted, report.rejected) == (4, 1)
    assert report.errors[0].line == 6
    assert "title" in report.errors[0].reason
    assert "at least one language" in report.errors[0].reason

    def title(record_id: str) -> object:
        got = store.get(ART, record_id)
        assert got is not None
        return got.fields["title"]

    # A plain title beside language columns keeps its place, its language not given.
    assert title("AT-BK-1") == {"und": "Der Kuss", "fr": "Le Baiser"}
    assert title("AT-BK-2") == "Häuser am Meer"
    assert title("AT-BK-3") == {"fr": "La Vierge", "de": "Die Jungfrau"}
    assert title("AT-BK-4") == {"fr": "Wally", "de": "Bildnis Wally"}
    assert ids(search(store, text="jungfrau"))[:1] == ["AT-BK-3"]
    assert ids(search(store, text="baiser klimt"))[:1] == ["AT-BK-1"]
    assert ids(search(store, text="hauser meer"))[:1] == ["AT-BK-2"]
    got = store.get(ART, "AT-BK-1")
    assert got is not None
    assert got.fields["stolen_on"] == "2015-05-01"


def test_csv_without_title_column_is_refused(store: RecordStore) -> None:
    with pytest.raises(ImportFileError, match="lacks the column"):
        import_stream(store, io.BytesIO(b"id,name\nX-1,Wally\n"), category=ART, fmt="csv")
    assert store.count(ART) == 0


TOMORROW = (date.today() + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"title": "Der Kuss"}, "id: Field required"),
        ({"id": "", "title": "Der Kuss"}, "needs its id"),
        ({"id": "AT 1/2", "title": "Der Kuss"}, "id: String should match pattern"),
        ({"id": "X-1", "title": ""}, "title: the title is empty"),
        ({"id": "X-1", "title": "   "}, "the title is empty"),
        ({"id": "X-1"}, "title: Field required"),
        ({"id": "X-1", "title": {"fr": "", "de": " "}}, "give it in at least one language"),
        ({"id": "X-1", "title": {}}, "give it in at least one language"),
        ({"id": "X-1", "title": {"ge": "Der Kuss"}}, "'ge' is not an ISO 639-1 language code"),
        (
            {"id": "X-1", "title": "Kuss", "title_german": "Kuss"},
            "'german' is not an ISO 639-1 language code",
        ),
        ({"id": "X-1", "title": {"fr": 5}}, "maps language codes to strings"),
        ({"id": "X-1", "title": ["Der Kuss"]}, "a title is a string, or a mapping"),
        ({"id": "X-1", "title": "T" * 501}, "at most 500 characters"),
        (
            {"id": "X-1", "title": {"fr": "Le Baiser"}, "title_fr": "Un baiser"},
            "title_fr differs from the 'fr' title",
        ),
        (
            {"id": "X-1", "title": "Kuss", "stolen_on": TOMORROW},
            "stolen_on: the date lies in the future",
        ),
        ({"id": "X-1", "title": "Kuss", "stolen_on": "2019-02-30"}, "stolen_on: "),
        (
            {"id": "X-1", "title": "Kuss", "colour": "gold"},
            "colour: Extra inputs are not permitted",
        ),
        ({"id": "X-1", "title": "Kuss", "object_type": "p" * 61}, "object_type: "),
        ({"id": "X-1", "title": "Kuss", "description": "d" * 4001}, "description: "),
    ],
)
def test_bad_rows_are_rejected_with_their_reason(
    store: RecordStore, row: dict[str, Any], reason: str
) -> None:
    good = {"id": "OK-1", "title": "Der Kuss"}
    report = import_stream(store, io.BytesIO(ndjson([good, row])), category=ART, fmt="ndjson")
    assert (report.inserted, report.rejected) == (1, 1)
    assert report.errors[0].line == 2
    assert reason in report.errors[0].reason
    assert store.count(ART) == 1


def test_bad_csv_rows_name_line_and_reason(store: RecordStore) -> None:
    data = (
        "id,title,title_ge,stolen_on\n"
        ",Der Kuss,,\n"
        f"X-2,Der Kuss,,{TOMORROW}\n"
        "X-3,Der Kuss,Der Kuss,\n"
        "X-4,Der Kuss,,2019-06-01\n"
    ).encode()
    report = import_stream(store, io.BytesIO(data), category=ART, fmt="csv")
    assert report.inserted == 1
    assert [(e.line, e.reason.split(":")[0]) for e in report.errors] == [
        (2, "id"),
        (3, "stolen_on"),
        (4, "title"),
    ]
    assert "'ge' is not an ISO 639-1 language code" in report.errors[2].reason


def test_update_and_removal_keep_the_text_index_in_step(collection: RecordStore) -> None:
    changed = {**COLLECTION[3], "title": {"en": "The Madonna"}, "artist": "Edvard Munch"}
    report = import_stream(collection, io.BytesIO(ndjson([changed])), category=ART, fmt="ndjson")
    assert (report.inserted, report.updated) == (0, 1)
    assert search(collection, text="scream") == []
    assert search(collection, text="schrei") == []
    assert ids(search(collection, text="madonna munch")) == ["NO-KRIPOS-2004-88"]
    # A new artist: the old key no longer finds the work, the new one does.
    moved = {**COLLECTION[11], "artist": "Camille Claudel"}
    import_stream(collection, io.BytesIO(ndjson([moved])), category=ART, fmt="ndjson")
    assert ids(search(collection, artist="Auguste Rodin")) == ["FR-OCBC-2009-0441"]
    assert ids(search(collection, artist="camille claudel")) == ["FR-OCBC-2009-0440"]

    assert collection.remove(ART, "FR-OCBC-2019-0002")
    assert search(collection, text="nympheas") == []
    assert search(collection, ref="FR-OCBC-2019-0002") == []
    assert "FR-OCBC-2019-0002" not in ids(search(collection, artist="Claude Monet"))
    # --replace: the file is the whole category now.
    keep = [r for r in COLLECTION if r["id"].startswith("GR-")]
    report = import_stream(
        collection, io.BytesIO(ndjson(keep)), category=ART, fmt="ndjson", replace=True
    )
    assert report.removed == len(COLLECTION) - 1 - len(keep)
    assert search(collection, text="argenteuil") == []
    assert search(collection, artist="Edvard Munch") == []
    assert ids(search(collection, text="tetradrachm")) == ["GR-HP-2012-0102"]
    assert collection.count(ART) == len(keep)


def test_lookups_are_built_from_the_criteria() -> None:
    criteria = KIND.parse_criteria(
        {"text": "Le Pont d'Argenteuil, 1874", "artist": " Monet ", "ref": "FR-OCBC-2019-0001"}
    )
    assert KIND.lookups(criteria) == (
        {"ref_key": "FR-OCBC-2019-0001"},
        {"artist_key": "monet"},
        TextQuery(words=("le", "pont", "argenteuil", "1874", "monet")),
    )
    assert KIND.lookups(KIND.parse_criteria({"ref": "X-1"})) == ({"ref_key": "X-1"},)
    many = KIND.parse_criteria({"text": " ".join(f"w{i}" for i in range(20))})
    assert KIND.lookups(many) == (TextQuery(words=tuple(f"w{i}" for i in range(12))),)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Le Pont d'Argenteuil", ("le", "pont", "argenteuil")),
        ("L'Âge d'airain", ("âge", "airain")),
        ("monet monet MONET", ("monet",)),
        ("a b c", ()),
        ("snake_case / dash-word", ("snake", "case", "dash", "word")),
        ("Παναγία Οδηγήτρια", ("παναγία", "οδηγήτρια")),
    ],
)
def test_words_of(text: str, words: tuple[str, ...]) -> None:
    assert words_of(text) == words


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Józef  Chełmoński", "jozef chelmonski"),
        ("  JOAQUÍN\tSOROLLA ", "joaquin sorolla"),
        ("František Kupka", "frantisek kupka"),
        ("Peder Severin Krøyer", "peder severin kroyer"),
        ("Albrecht Dürer", "albrecht durer"),
    ],
)
def test_normalise_artist(name: str, key: str) -> None:
    assert normalise_artist(name) == key


@pytest.mark.parametrize(
    ("criteria", "field", "detail"),
    [
        ({}, "text", "needs text, title, artist or ref"),
        ({"text": ""}, "text", "text is empty"),
        ({"text": "   "}, "text", "text is empty"),
        ({"title": ""}, "title", "title is empty"),
        ({"text": "x" * 501}, "text", "longer than 500 characters"),
        ({"artist": "y" * 501}, "artist", "longer than 500 characters"),
        ({"text": 5}, "text", "must be a string"),
        ({"text": "a ! b"}, "text", "no word of two or more"),
        ({"ref": "FR 1/2"}, "ref", "is not an artwork reference"),
        ({"ref": "R" * 65}, "ref", "is not an artwork reference"),
        ({"colour": "red"}, "colour", "unknown artwork criterion 'colour'"),
        ({"text": "monet", "number": "X"}, "number", "unknown artwork criterion"),
    ],
)
def test_criteria_errors_name_the_field(
    criteria: Mapping[str, object], field: str, detail: str
) -> None:
    with pytest.raises(InvalidCriteria) as caught:
        KIND.parse_criteria(criteria)
    assert caught.value.field == field
    assert detail in caught.value.detail


@pytest.mark.parametrize(
    "text", ['monet" OR "x', "NEAR(monet claude)", "monet*", "title:monet", "-monet", "AND OR NOT"]
)
def test_query_text_is_words_never_index_syntax(collection: RecordStore, text: str) -> None:
    search(collection, text=text)  # no full-text syntax error, whatever it finds


def test_an_unclosed_csv_quote_is_named_never_merged(store: RecordStore) -> None:
    """A quote opened and never closed on its line swallows the lines after it: the
    opening line and every line it swallowed are reported; none of them goes in merged."""
    head = "id,title,artist,object_type,stolen_on\n"
    closed_later = (
        head + "AT-1,Der Kuss,Gustav Klimt,painting,\n"
        'AT-2,"Wally,Egon Schiele,painting,\n'  # the quote opens here ...
        "AT-3,Häuser am Meer,Egon Schiele,painting,\n"
        'AT-4,Die Jungfrau",Gustav Klimt,painting,\n'  # ... and closes here
        "AT-5,Bildnis Wally,Egon Schiele,painting,\n"
    ).encode()
    report = import_stream(store, io.BytesIO(closed_later), category=ART, fmt="csv")
    assert (report.inserted, report.rejected) == (2, 3)
    assert [e.line for e in report.errors] == [3, 4, 5]
    assert "a quote opened on line 3 is not closed" in report.errors[0].reason
    assert "lines 4-5" in report.errors[0].reason
    assert "unclosed quote of line 3" in report.errors[1].reason
    assert store.get(ART, "AT-2") is None
    to_the_end = (head + 'AT-6,"Wally,Egon Schiele,painting,\nAT-7,Kuss,Klimt,painting,\n').encode()
    report = import_stream(store, io.BytesIO(to_the_end), category=ART, fmt="csv")
    assert (report.inserted, report.rejected) == (0, 2)
    assert report.errors[0].line == 2
    # A quoted value may hold a line break: a description over two lines is one row.
    multi = (
        head.replace("stolen_on", "description") + 'AT-8,Kuss,Klimt,painting,"Oil.\nGold leaf."\n'
    ).encode()
    report = import_stream(store, io.BytesIO(multi), category=ART, fmt="csv")
    assert (report.inserted, report.rejected) == (1, 0)
