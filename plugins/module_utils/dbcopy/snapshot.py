# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the copy reads from the source before any row moves: the catalog, the exported snapshot the workers share,
the tables cut in page ranges, and the tables whose rows hash with ``hash_record_extended``."""

from __future__ import annotations

from dataclasses import dataclass

from .._pg import psycopg2, sql
from ..errors import InvalidInput
from ..session import Session
from . import source_changes, verify
from .catalog import read_catalog
from .catalog_model import SourceCatalog
from .request import CopyJob
from .stream import page_ranges

SOURCE_LOCK_TIMEOUT = "60s"
# Tables whose heap reaches SPLIT_MIN_BYTES are copied in pieces of page ranges by several workers at once
# (TID range scans, PostgreSQL 14+), SPLIT_PIECES_PER_JOB pieces per worker at most, pieces of at least
# SPLIT_PIECE_BYTES.
SPLIT_MIN_BYTES = 32 << 20
SPLIT_PIECE_BYTES = 16 << 20
SPLIT_PIECES_PER_JOB = 2


@dataclass
class Snapshot:
    """The source as the copy reads it: every worker sets ``snapshot`` as its transaction snapshot."""

    snapshot: str
    catalog: SourceCatalog
    pieces: dict[str, list[tuple[int | None, int | None]]]  # page ranges of the tables copied in pieces
    hashed: set[str]


def plan_catalog(job: CopyJob) -> SourceCatalog:
    """Read the source once to fail early (before any change) on unsupported objects."""
    conn = job.open_source("plan")
    try:
        catalog = read_catalog(Session(conn, []), job.request.source_database, job.request.source_schema)
    finally:
        conn.close()
    refuse_unsupported(catalog)
    return catalog


def refuse_unsupported(catalog: SourceCatalog) -> None:
    if catalog.unsupported:
        raise InvalidInput(
            f"Schema {catalog.schema!r} of database {catalog.database!r} holds objects the copy does not "
            f"reproduce, so nothing was copied: {'; '.join(catalog.unsupported)}"
        )


def take(job: CopyJob, coordinator, imported: str | None = None) -> Snapshot:
    """Export the snapshot on ``coordinator``, which holds it (and the source tables' locks) until it closes;
    ``imported``: the snapshot (of a replication slot, the online move) that ``coordinator`` takes as its own.

    Sets ``job.source_stats``: the source's counters, read by the first statement, which also takes the snapshot.
    """
    req = job.request
    source = Session(coordinator, [])
    if imported:
        with coordinator.cursor() as cur:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (imported,))
    job.source_stats = source_changes.read(source, req.source_schema)
    catalog = read_catalog(source, req.source_database, req.source_schema)
    refuse_unsupported(catalog)
    if catalog.tables:
        # Like pg_dump: no DDL on the source tables until the copy has read them.
        with coordinator.cursor() as cur:
            cur.execute(sql.SQL("SET LOCAL lock_timeout TO {}").format(sql.Literal(SOURCE_LOCK_TIMEOUT)))
            cur.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
                    sql.SQL(", ").join(sql.Identifier(catalog.schema, t.name) for t in catalog.tables)
                )
            )
    snapshot = source.fetch_value("SELECT pg_export_snapshot()")
    split_pieces = pieces(job, source, catalog)
    hashed = hashable(coordinator, catalog) if req.verify == "checksum" else set()
    return Snapshot(snapshot, catalog, split_pieces, hashed)


def pieces(job: CopyJob, source: Session, catalog: SourceCatalog) -> dict[str, list[tuple[int | None, int | None]]]:
    """Page ranges of the tables big enough to be copied by several workers at once (TID range scans: PG 14+)."""
    jobs = job.request.jobs
    if jobs < 2 or source.conn.server_version < 140000 or not catalog.tables:
        return {}
    sizes = source.fetch_all(
        """SELECT c.relname, pg_relation_size(c.oid), current_setting('block_size')::int FROM pg_class c
           WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s) AND c.relkind = 'r'""",
        (catalog.schema,),
    )
    threshold = job.hooks.split_min_bytes or SPLIT_MIN_BYTES
    piece = max(1, min(SPLIT_PIECE_BYTES, threshold // 4))
    plan = {}
    for name, size, block in sizes:
        if size >= threshold and size >= 2 * block:
            count = min(SPLIT_PIECES_PER_JOB * jobs, max(2, size // piece))
            plan[name] = page_ranges(size // block, count)
    return plan


def hashable(conn, catalog: SourceCatalog) -> set[str]:
    """Tables whose columns all have built-in types with an extended hash function (hash_record_extended)."""
    if conn.server_version < 140000:
        return set()
    found = set()
    with conn.cursor() as cur:
        # Built-in types only: the hash of an enum value is the hash of its OID, which differs in the copy.
        for table in (t for t in catalog.tables if t.binary_safe):
            cur.execute("SAVEPOINT probe")
            try:
                cur.execute(verify.probe_query(catalog.schema, table))
                found.add(table.name)
            except psycopg2.Error as exc:
                if exc.pgcode != verify.UNDEFINED_FUNCTION:
                    raise
            cur.execute("ROLLBACK TO SAVEPOINT probe")
    return found
