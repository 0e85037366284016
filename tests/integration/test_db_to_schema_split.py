"""postgres_db_to_schema: large tables copied in page-range pieces by several workers, and verified."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from psycopg2 import sql

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.hooks import SPLIT_ENV
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.request import staging_name
from tests.harness.ansible import run_tasks
from tests.harness.catalog import data_checksums, describe_schema, diff_descriptions
from tests.integration.test_db_to_schema_interrupt import PausedRun

FQCN = "lamassuiot.postgres.postgres_db_to_schema"

# A table of a few hundred kB with holes (deleted rows), moved rows (updates), TOASTed values, NULLs and
# text that needs escaping; a second one with a user type, so it is copied in text format and its checksum
# hashes the rows' text; a third one with built-in types that have no hash function (text hash too).
SOURCE_SQL = """
CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE TABLE big (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    payload text,
    doc jsonb,
    at timestamptz DEFAULT now(),
    twice bigint GENERATED ALWAYS AS (id * 2) STORED
);
INSERT INTO big (id, name, payload, doc)
SELECT g, 'row ' || g || E'\\ttab\\nline \\\\ back',
       CASE WHEN g % 7 = 0 THEN NULL
            WHEN g % 97 = 0 THEN repeat(md5(g::text), 200)
            ELSE md5(g::text) END,
       jsonb_build_object('g', g, 'l', ARRAY[g, g + 1])
FROM generate_series(1, 6000) g;
DELETE FROM big WHERE id % 11 = 0;
UPDATE big SET name = name || ' moved' WHERE id % 13 = 0;
CREATE INDEX big_name ON big (name);
CREATE TABLE feelings (id int PRIMARY KEY, how mood, note text);
INSERT INTO feelings SELECT g, CASE WHEN g % 2 = 0 THEN 'ok' ELSE 'sad' END::mood, repeat('x', g % 50)
FROM generate_series(1, 4000) g;
CREATE TABLE loose (id int PRIMARY KEY, j json, p point);  -- built-in types without a hash function
INSERT INTO loose SELECT g, json_build_object('g', g), point(g, -g) FROM generate_series(1, 300) g;
ANALYZE;
"""


def _database(cluster, name: str, statements: str | None = None) -> str:
    with contextlib.closing(cluster.connect()) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    if statements:
        with contextlib.closing(cluster.connect(name)) as conn, conn.cursor() as cur:
            cur.execute(statements)
    return name


@pytest.mark.parametrize("verify", ["checksum", "count"])
def test_split_tables_are_copied_faithfully(pg, verify):
    if pg.version < 14:
        pytest.skip("tables are split by page ranges only on PostgreSQL 14+ (TID range scans); older copy them whole")
    suffix = uuid.uuid4().hex[:8]
    source = _database(pg, f"split_src_{suffix}", SOURCE_SQL)
    target = _database(pg, f"split_tgt_{suffix}")
    task = {
        FQCN: {"source_database": source, "target_database": target, "target_schema": "copied", "verify": verify},
        "environment": {SPLIT_ENV: "16384"},
    }
    result = run_tasks([task], pg).result
    assert result.get("changed") is True and not result.get("failed"), result.get("msg")
    assert all(t["verified"] for t in result["tables"])
    # Each of the two tables went in several pieces, without FREEZE (the pieces load concurrently).
    for table in ("big", "feelings"):
        loads = [q for q in result["queries"] if q.startswith(f'COPY "lamassu_stage_copied"."{table}"')]
        assert len(loads) >= 2, loads
        assert not any("FREEZE" in q for q in loads), loads
    with contextlib.closing(pg.connect(source)) as src, contextlib.closing(pg.connect(target)) as tgt:
        differences = diff_descriptions(describe_schema(src, "public"), describe_schema(tgt, "copied"))
        assert not differences, "\n".join(differences[:40])
        assert data_checksums(src, "public") == data_checksums(tgt, "copied")


def test_small_tables_are_loaded_whole_with_freeze(pg):
    suffix = uuid.uuid4().hex[:8]
    source = _database(pg, f"split_src_{suffix}", SOURCE_SQL)
    target = _database(pg, f"split_tgt_{suffix}")
    result = run_tasks([{FQCN: {"source_database": source, "target_database": target}}], pg).result
    assert result.get("changed") is True and not result.get("failed"), result.get("msg")
    loads = [q for q in result["queries"] if q.startswith("COPY ")]
    assert len(loads) == 3 and all("FREEZE" in q for q in loads), loads


@pytest.mark.parametrize(
    ("verify", "change", "expected"),
    [
        ("count", "DELETE FROM {} WHERE id = 1", "rows in the source"),
        ("checksum", "UPDATE {} SET name = name || 'x' WHERE id = 1", "checksums"),
    ],
)
def test_split_table_mismatch_fails_and_publishes_nothing(pg, monkeypatch, verify, change, expected):
    suffix = uuid.uuid4().hex[:8]
    source = _database(pg, f"split_src_{suffix}", SOURCE_SQL + "DROP TABLE feelings, loose;")
    target = _database(pg, f"split_tgt_{suffix}")
    monkeypatch.setenv(SPLIT_ENV, "16384")
    run = PausedRun(pg, {"source_database": source, "target_database": target, "verify": verify}, "verify")
    run.wait_paused()
    with contextlib.closing(pg.connect(target)) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL(change).format(sql.Identifier(staging_name(source), "big")))
    result = run.resume()
    assert result["failed"] is True
    assert "table big" in result["msg"] and expected in result["msg"], result["msg"]
    with contextlib.closing(pg.connect(target)) as conn, conn.cursor() as cur:
        cur.execute("SELECT nspname FROM pg_namespace WHERE nspname IN (%s, %s)", (source, staging_name(source)))
        assert cur.fetchall() == []
