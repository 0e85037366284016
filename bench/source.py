"""The legacy databases the bench copies: built once, described, and the check every copy must pass."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.harness.collection import ensure_collection_path

ensure_collection_path()

from psycopg2 import sql  # noqa: E402

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import (  # noqa: E402
    MAINTENANCE_DATABASE,
    SERVICES,
)
from tests.harness.fixture import build_legacy  # noqa: E402
from tests.harness.pgcluster import Cluster  # noqa: E402


@dataclass
class SourceTable:
    rows: int
    primary_key: list[str] | None
    bytes: int


@dataclass
class Source:
    """The legacy databases as built: per service, its database and its tables."""

    scale: float
    prefix: str
    databases: dict[str, str]  # service -> database
    tables: dict[str, dict[str, SourceTable]]  # service -> table -> facts
    database_bytes: int
    table_bytes: int

    @property
    def rows(self) -> int:
        return sum(t.rows for tables in self.tables.values() for t in tables.values())


_TABLES = """
SELECT c.relname, pg_table_size(c.oid),
       (SELECT array_agg(a.attname::text ORDER BY k.n)
          FROM pg_constraint co CROSS JOIN LATERAL unnest(co.conkey) WITH ORDINALITY AS k(attnum, n)
          JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum
         WHERE co.conrelid = c.oid AND co.contype = 'p')
FROM pg_class c WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r' ORDER BY c.relname
"""


def describe_tables(cluster: Cluster, database: str, schema: str) -> dict[str, tuple[int, list[str] | None, int]]:
    """``{table: (rows, primary key columns, table bytes)}`` of one schema, rows counted exactly."""
    with contextlib.closing(cluster.connect(database)) as conn, conn.cursor() as cur:
        cur.execute(_TABLES, (schema,))
        found = {}
        for name, size, key in cur.fetchall():
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name)))
            found[name] = (cur.fetchone()[0], list(key) if key else None, size)
        return found


def describe_source(cluster: Cluster, scale: float, prefix: str) -> Source:
    databases = {service: prefix + service for service in SERVICES}
    tables = {}
    database_bytes = 0
    for service, database in databases.items():
        tables[service] = {
            name: SourceTable(rows, key, size)
            for name, (rows, key, size) in describe_tables(cluster, database, "public").items()
        }
        database_bytes += cluster.query(database, "SELECT pg_database_size(current_database())")[0][0]
    table_bytes = sum(t.bytes for ts in tables.values() for t in ts.values())
    return Source(scale, prefix, databases, tables, database_bytes, table_bytes)


def check_copy(cluster: Cluster, source: Source, where: Callable[[str], tuple[str, str]]) -> list[str]:
    """Problems of a copy: ``where(service)`` gives the (database, schema) holding that service's tables."""
    problems = []
    for service, expected in source.tables.items():
        database, schema = where(service)
        try:
            found = describe_tables(cluster, database, schema)
        except Exception as exc:  # a missing database is a problem to report, not a crash
            problems.append(f"{database}.{schema}: {str(exc).strip()}")
            continue
        for name, table in expected.items():
            if name not in found:
                problems.append(f"{database}.{schema}.{name}: missing")
                continue
            rows, key, _size = found[name]
            if rows != table.rows:
                problems.append(f"{database}.{schema}.{name}: {rows} rows, expected {table.rows}")
            if key != table.primary_key:
                problems.append(f"{database}.{schema}.{name}: primary key {key}, expected {table.primary_key}")
        extra = sorted(set(found) - set(expected))
        if extra:
            problems.append(f"{database}.{schema}: unexpected tables {extra}")
    return problems


def prepare_source(cluster: Cluster, scale: float, prefix: str, rebuild: bool) -> tuple[Source, float]:
    """Build (or keep) the legacy databases, vacuum them (hint bits, visibility map) and describe them."""
    began = time.monotonic()
    build_legacy(cluster, scale=scale, prefix=prefix, drop_existing=rebuild)
    for service in SERVICES:
        cluster.execute(prefix + service, "VACUUM (ANALYZE)")
    cluster.execute(MAINTENANCE_DATABASE, "CHECKPOINT")
    return describe_source(cluster, scale, prefix), time.monotonic() - began
