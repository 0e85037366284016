# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The journal of finished copies and of source freezes, in the target database.

It lives in schema ``lamassu.JOURNAL_SCHEMA``, outside every service schema:

* ``db_to_schema_copies``: one row per published copy (source database and
  schema, target schema and the OID the target schema had when published,
  status ``published`` / ``removed`` / ``source_dropped`` is recorded in
  ``source_dropped_at``, times, per-table rows and checksums, tool version);
* ``db_to_schema_freezes``: one row per frozen source database with the value
  of ``default_transaction_read_only`` it had before, so that lifting the
  freeze restores it exactly.

A copy counts as done when a ``published`` row exists and a schema with the
recorded OID still carries the target name: a schema dropped and made again
by hand is not mistaken for the copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .._compat import transaction
from .._pg import sql
from ..lamassu import JOURNAL_SCHEMA
from ..locks import JOURNAL_LOCK, xact_lock

COPIES_TABLE = "db_to_schema_copies"
FREEZES_TABLE = "db_to_schema_freezes"

DDL = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    """CREATE TABLE IF NOT EXISTS {schema}.{copies} (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        source_database text NOT NULL,
        source_schema text NOT NULL,
        target_schema text NOT NULL,
        target_schema_oid oid NOT NULL,
        status text NOT NULL CHECK (status IN ('published', 'removed')),
        verify text NOT NULL,
        goose_version bigint,
        started_at timestamptz NOT NULL,
        finished_at timestamptz NOT NULL,
        tables jsonb NOT NULL,
        collection_version text NOT NULL,
        source_dropped_at timestamptz,
        removed_at timestamptz)""",
    # Added after 0.1.0: a journal made before gets it from the next copy's ensure().
    "ALTER TABLE {schema}.{copies} ADD COLUMN IF NOT EXISTS source_stats jsonb",
    """CREATE TABLE IF NOT EXISTS {schema}.{freezes} (
        source_database text PRIMARY KEY,
        previous_setting text,
        frozen_at timestamptz NOT NULL DEFAULT now())""",
)


def _compose(text: str) -> sql.Composable:
    return sql.SQL(text).format(
        schema=sql.Identifier(JOURNAL_SCHEMA),
        copies=sql.Identifier(COPIES_TABLE),
        freezes=sql.Identifier(FREEZES_TABLE),
    )


@dataclass
class CopyRecord:
    id: int
    source_database: str
    source_schema: str
    target_schema: str
    target_schema_oid: int
    verify: str
    goose_version: int | None
    started_at: str
    finished_at: str
    tables: list[dict] = field(default_factory=list)
    collection_version: str = ""
    source_dropped_at: str | None = None
    source_stats: dict | None = None  # dbcopy.source_changes.read() at the copy's snapshot


class Journal:
    """Reads and writes of the journal through a ``Session`` on the target database."""

    def __init__(self, session):
        self.session = session

    def exists(self) -> bool:
        return bool(
            self.session.fetch_value(
                "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL", (JOURNAL_SCHEMA, FREEZES_TABLE)
            )
        )

    def current(self) -> bool:
        """The journal exists with every column of this version."""
        return self.exists() and bool(
            self.session.fetch_value(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(format('%%I.%%I', %s::text, %s::text))"
                " AND attname = 'source_stats' AND NOT attisdropped",
                (JOURNAL_SCHEMA, COPIES_TABLE),
            )
        )

    def ensure(self) -> None:
        """Create the journal, or add what this version records, when missing (its own committed transaction)."""
        if self.current():
            return
        conn = self.session.conn
        with transaction(conn):
            xact_lock(self.session, JOURNAL_LOCK)
            for statement in DDL:
                self.session.execute(_compose(statement), what="journal")

    def published(self, source_database: str, source_schema: str, target_schema: str) -> CopyRecord | None:
        """The recorded copy of this source into this target, if the target schema is still that copy."""
        if not self.exists():
            return None
        row = self.session.fetch_one(
            _compose(
                """
                SELECT j.id, j.source_database, j.source_schema, j.target_schema, j.target_schema_oid, j.verify,
                       j.goose_version, j.started_at::text, j.finished_at::text, j.tables, j.collection_version,
                       j.source_dropped_at::text, to_jsonb(j) -> 'source_stats'
                FROM {schema}.{copies} j JOIN pg_namespace n ON n.oid = j.target_schema_oid AND n.nspname = j.target_schema
                WHERE j.status = 'published' AND j.source_database = %s AND j.source_schema = %s
                  AND j.target_schema = %s
                ORDER BY j.id DESC LIMIT 1
                """
            ),
            (source_database, source_schema, target_schema),
        )
        return CopyRecord(*row) if row else None

    def record_copy(self, record: CopyRecord) -> None:
        """Insert a ``published`` row; the caller runs it in the publish transaction."""
        self.session.execute(
            _compose(
                """
                INSERT INTO {schema}.{copies} (source_database, source_schema, target_schema, target_schema_oid, status,
                    verify, goose_version, started_at, finished_at, tables, collection_version, source_stats)
                VALUES (%s, %s, %s, %s, 'published', %s, %s, %s, now(), %s, %s, %s)
                """
            ),
            (
                record.source_database,
                record.source_schema,
                record.target_schema,
                record.target_schema_oid,
                record.verify,
                record.goose_version,
                record.started_at,
                json.dumps(record.tables),
                record.collection_version,
                json.dumps(record.source_stats) if record.source_stats is not None else None,
            ),
            what="journal",
        )

    def mark_removed(self, record_id: int) -> None:
        self.session.execute(
            _compose("UPDATE {schema}.{copies} SET status = 'removed', removed_at = now() WHERE id = %s"),
            (record_id,),
            what="journal",
        )

    def mark_replaced(self, schema_oid: int) -> None:
        """A recorded copy (of another source) that ``if_target_exists=replace`` dropped."""
        self.session.execute(
            _compose(
                "UPDATE {schema}.{copies} SET status = 'removed', removed_at = now() "
                "WHERE target_schema_oid = %s AND status = 'published'"
            ),
            (schema_oid,),
            what="journal",
        )

    def mark_source_dropped(self, source_database: str) -> None:
        self.session.execute(
            _compose(
                "UPDATE {schema}.{copies} SET source_dropped_at = now() "
                "WHERE source_database = %s AND status = 'published' AND source_dropped_at IS NULL"
            ),
            (source_database,),
            what="journal",
        )

    def freeze_record(self, source_database: str) -> tuple[bool, str | None]:
        """(recorded, previous setting) of a freeze of ``source_database``."""
        if not self.exists():
            return False, None
        row = self.session.fetch_one(
            _compose("SELECT previous_setting FROM {schema}.{freezes} WHERE source_database = %s"), (source_database,)
        )
        return (True, row[0]) if row else (False, None)

    def record_freeze(self, source_database: str, previous: str | None) -> None:
        self.session.execute(
            _compose(
                "INSERT INTO {schema}.{freezes} (source_database, previous_setting) VALUES (%s, %s) "
                "ON CONFLICT (source_database) DO NOTHING"
            ),
            (source_database, previous),
            what="journal",
        )

    def forget_freeze(self, source_database: str) -> None:
        self.session.execute(
            _compose("DELETE FROM {schema}.{freezes} WHERE source_database = %s"), (source_database,), what="journal"
        )
