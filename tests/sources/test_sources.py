"""Sync from a national database: a real PostgreSQL with its own schema and column names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from support.databases import DatabaseUrl
from support.network import ask, on_databases
from support.processes import audit_entries, cli

from connector.demo import DemoNode, network
from connector.storage import pgtemp
from connector.vocabulary import Category

NATIONAL_SCHEMA = """
CREATE SCHEMA interior;
CREATE TABLE interior.gestohlene_dokumente (
    dok_id       integer PRIMARY KEY,
    dok_nummer   text NOT NULL,
    staat        text NOT NULL,
    lage         text NOT NULL,
    gemeldet_am  date,
    geaendert_am timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE interior.kfz_fahndung (          -- no change timestamp: compared by digest
    fin          text PRIMARY KEY,
    kennzeichen  text,
    land         text,
    hersteller   text,
    lage         text NOT NULL
);
INSERT INTO interior.gestohlene_dokumente (dok_id, dok_nummer, staat, lage, gemeldet_am) VALUES
    (1, 'C01X00T47', 'DE', 'stolen', '2025-03-01'),
    (2, 'C01X00T55', 'DE', 'lost',   '2025-04-11'),
    (3, 'L8Y2M5Q01', 'DE', 'stolen', NULL),
    (4, 'L8Y2M5Q02', 'XX', 'stolen', NULL);           -- no such country: rejected
INSERT INTO interior.kfz_fahndung VALUES
    ('WDB2110421A123456', 'B-XY 123', 'DE', 'Mercedes-Benz', 'stolen'),
    ('1M8GDM9AXKP042788', 'M-AB 77',  'DE', 'Motor Coach',   'stolen'),
    ('1M8GDM9AXKP042789', NULL, NULL, 'Motor Coach', 'stolen');  -- wrong check digit
CREATE ROLE reader LOGIN;
GRANT USAGE ON SCHEMA interior TO reader;
GRANT SELECT ON ALL TABLES IN SCHEMA interior TO reader;
"""

SOURCES = """\
sources:
  - name: dokumente
    url: {url}
    category: travel_documents
    schema: interior
    table: gestohlene_dokumente
    key: dok_id
    changed: geaendert_am
    columns:
      number: dok_nummer
      country: staat
      status: lage
      reported_on: gemeldet_am
    constants:
      document_type: P
    every: 1h
  - name: kfz
    url: {url}
    category: vehicles
    schema: interior
    table: kfz_fahndung
    key: fin
    columns:
      vin: fin
      plate: kennzeichen
      plate_country: land
      make: hersteller
      status: lage
    every: 1h
"""


@pytest.fixture
def national(pg_server: pgtemp.Server) -> Any:
    """The national database, and a function running SQL in it as its owner."""
    url = pg_server.create_database("national")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS reader")
        conn.execute(NATIONAL_SCHEMA)

    def run(sql: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)

    yield url.replace("postgres@", "reader@"), run
    pg_server.drop_database("national")
    with psycopg.connect(pg_server.url("postgres"), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS reader")


def sync(node: DemoNode, *args: str) -> tuple[int, str, str]:
    result = cli(
        "records", "sync", *args, config=node.node.settings.base_dir / "connector.yaml", check=False
    )
    return result.returncode, result.stdout, result.stderr


async def statuses(net: dict[str, DemoNode], *numbers: str) -> list[str]:
    checks: list[tuple[Category, dict[str, Any]]] = [
        (Category.TRAVEL_DOCUMENTS, {"number": n, "country": "DE"}) for n in numbers
    ]
    results = await ask(net, "FR", checks)
    return [results[str(i)].status for i in range(len(numbers))]


async def vehicle_statuses(net: dict[str, DemoNode], *vins: str) -> list[str]:
    results = await ask(net, "FR", [(Category.VEHICLES, {"vin": v}) for v in vins])
    return [results[str(i)].status for i in range(len(vins))]


async def test_inserts_updates_and_deletes_at_the_source_reach_the_answers(
    tmp_path: Path, db_url: DatabaseUrl, national: Any
) -> None:
    source_url, run = national
    async with network(tmp_path, ["FR", "DE"], on_databases(db_url)) as net:
        de = net["DE"]
        (de.node.settings.base_dir / "sources.yaml").write_text(SOURCES.format(url=source_url))

        code, out, err = sync(de)
        assert code == 1  # two rows were rejected: said, and the good rows are in
        assert "dokumente → travel_documents: read 4, inserted 3, updated 0" in out
        assert "kfz → vehicles: read 3, inserted 2, updated 0" in out
        synced = audit_entries(de.node.settings.base_dir / "connector.yaml")[-1]
        assert (synced["action"], synced["target"]) == ("records.synced", "dokumente,kfz")
        assert synced["details"]["sources"]["kfz"] == {
            "inserted": 2,
            "updated": 0,
            "removed": 0,
            "rejected": 1,
        }
        assert "rejected 4:" in err
        assert "XX" in err
        assert "rejected 1M8GDM9AXKP042789:" in err
        assert "check digit" in err
        assert await statuses(net, "C01X00T47", "C01X00T55", "L8Y2M5Q01", "L8Y2M5Q99") == [
            "hit",
            "hit",
            "hit",
            "no_hit",
        ]
        assert await vehicle_statuses(net, "WDB2110421A123456", "1M8GDM9AXKP042788") == [
            "hit",
            "hit",
        ]

        # Nothing changed: nothing rewritten.
        code, out, _ = sync(de, "--source", "kfz")
        assert "read 3, inserted 0, updated 0, unchanged 2, removed 0" in out

        run("""
            INSERT INTO interior.gestohlene_dokumente (dok_id, dok_nummer, staat, lage)
                VALUES (5, 'T22000129', 'DE', 'stolen');
            UPDATE interior.gestohlene_dokumente SET dok_nummer = 'C01X00T63',
                geaendert_am = now() WHERE dok_id = 2;           -- a number corrected
            DELETE FROM interior.gestohlene_dokumente WHERE dok_id = 3;   -- found again
            DELETE FROM interior.gestohlene_dokumente WHERE dok_id = 4;
            UPDATE interior.kfz_fahndung SET lage = 'found' WHERE fin = '1M8GDM9AXKP042789';
            DELETE FROM interior.kfz_fahndung WHERE fin = 'WDB2110421A123456';
            UPDATE interior.kfz_fahndung SET hersteller = 'MCI' WHERE fin = '1M8GDM9AXKP042788';
        """)
        code, out, err = sync(de)
        # Rows from the last sync's newest timestamp on (row 1 among them, unchanged); the
        # record under the old number went with its correction.
        assert (
            "dokumente → travel_documents: read 3, inserted 2, updated 0, unchanged 1, "
            "removed 2" in out
        )
        assert "kfz → vehicles: read 2, inserted 0, updated 1, unchanged 0, removed 1" in out
        assert await statuses(
            net, "T22000129", "C01X00T63", "C01X00T55", "L8Y2M5Q01", "C01X00T47"
        ) == ["hit", "hit", "no_hit", "no_hit", "hit"]
        assert await vehicle_statuses(net, "WDB2110421A123456", "1M8GDM9AXKP042788") == [
            "no_hit",
            "hit",
        ]
        results = await ask(net, "FR", [(Category.VEHICLES, {"vin": "1M8GDM9AXKP042788"})])
        assert results["0"].hits[0].record["make"] == "MCI"

        # An emptied table is far more likely a fault than a country's worth of finds.
        run("DELETE FROM interior.gestohlene_dokumente")
        code, out, err = sync(de, "--source", "dokumente")
        assert code == 1
        assert "3 of 3 records would be removed" in err
        assert await statuses(net, "C01X00T47") == ["hit"]
        code, out, err = sync(de, "--source", "dokumente", "--allow-removal")
        assert code == 0, err
        assert "removed 3" in out
        assert await statuses(net, "C01X00T47", "T22000129") == ["no_hit", "no_hit"]


async def test_a_source_that_does_not_match_its_description_is_named(
    tmp_path: Path, national: Any
) -> None:
    source_url, _ = national
    async with network(tmp_path, ["DE"]) as net:
        de = net["DE"]
        broken = SOURCES.format(url=source_url).replace("kennzeichen", "amtliches_kennzeichen")
        (de.node.settings.base_dir / "sources.yaml").write_text(broken)
        code, _, err = sync(de, "--source", "kfz")
        assert code == 2
        assert "source kfz" in err
        assert "no column amtliches_kennzeichen" in err
        assert "Traceback" not in err

        data = yaml.safe_load(broken)
        data["sources"][0]["every"] = "soon"
        (de.node.settings.base_dir / "sources.yaml").write_text(yaml.safe_dump(data))
        code, _, err = sync(de)
        assert code == 2
        assert "sources.yaml:" in err
        assert "sources.0.every" in err


async def test_the_node_syncs_on_its_own_schedule(tmp_path: Path, national: Any) -> None:
    source_url, _ = national

    def configure(node_id: str, directory: Path) -> None:
        (directory / "sources.yaml").write_text(SOURCES.format(url=source_url))

    async with network(tmp_path, ["FR", "DE"], configure) as net:
        import asyncio

        for _ in range(100):  # bounded: the first run starts with the node
            if await statuses(net, "C01X00T47") == ["hit"]:
                break
            await asyncio.sleep(0.1)
        assert await statuses(net, "C01X00T47") == ["hit"]


# --- sync() itself, against a small SQLite "national database" ------------------------------


def _national(tmp_path: Path, rows: list[tuple[object, ...]]) -> str:
    import sqlite3

    path = tmp_path / "national.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS docs (k, nr TEXT, land TEXT, lage TEXT)")
        conn.execute("DELETE FROM docs")
        conn.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)", rows)
    return f"sqlite:///{path}"


def _source(url: str, **over: Any) -> Any:
    from connector.sources.model import Source

    return Source.model_validate(
        {
            "name": "docs",
            "url": url,
            "category": "travel_documents",
            "table": "docs",
            "key": "k",
            "columns": {"id": "k", "number": "nr", "country": "land", "status": "lage"},
            **over,
        }
    )


def _store(tmp_path: Path) -> Any:
    from connector.records.store import RecordStore

    return RecordStore.open(f"sqlite:///{tmp_path / 'records.db'}")


def test_a_replaced_table_is_refused_not_swapped_in(tmp_path: Path) -> None:
    """Every held row gone and as many new ones: the share is of what was held before."""
    import time

    from connector.sources.sync import sync

    store = _store(tmp_path)
    url = _national(tmp_path, [(f"A{i}", f"A000000{i}", "DE", "stolen") for i in range(4)])
    assert sync(_source(url), store, clock=time.time).inserted == 4
    _national(tmp_path, [(f"B{i}", f"B000000{i}", "DE", "stolen") for i in range(4)])
    report = sync(_source(url), store, clock=time.time)
    assert report.refused is not None
    assert "4 of 4 records would be removed" in report.refused
    assert report.removed == 0
    assert store.count(Category.TRAVEL_DOCUMENTS) == 8  # the new rows in, none taken out
    store.close()


def test_two_source_rows_for_one_document_keep_the_record_and_say_so(tmp_path: Path) -> None:
    import time

    from connector.sources.sync import sync

    store = _store(tmp_path)
    url = _national(tmp_path, [(1, "D0000001", "DE", "lost"), (2, "D0000001", "DE", "stolen")])
    report = sync(_source(url), store, clock=time.time)  # integer keys become text ids
    assert (report.inserted, report.rejected) == (1, 1)
    assert report.errors == [("2", "the same travel document as source row 1")]
    _national(tmp_path, [(1, "D0000001", "DE", "lost")])  # the duplicate is deleted
    report = sync(_source(url), store, clock=time.time)
    assert report.removed == 0
    record = store.get(Category.TRAVEL_DOCUMENTS, "1")
    assert record is not None
    assert record.fields["status"] == "lost"
    store.close()


def test_sources_yaml_names_unknown_and_missing_fields(tmp_path: Path) -> None:
    from connector.errors import ConfigError
    from connector.sources.model import load_sources

    path = tmp_path / "sources.yaml"
    path.write_text(
        SOURCES.format(url="sqlite:///x.db").replace("number: dok_nummer", "numbr: dok_nummer")
    )
    with pytest.raises(ConfigError) as caught:
        load_sources(path)
    assert "sources.yaml:" in str(caught.value)
    assert "numbr: not a field of travel_documents" in str(caught.value)
    without_status = SOURCES.format(url="sqlite:///x.db").replace(
        "      status: lage\n      reported_on", "      reported_on"
    )
    path.write_text(without_status)
    with pytest.raises(ConfigError, match="travel_documents needs status"):
        load_sources(path)
