# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record that a schema was migrated against a migrations tree and left nothing pending.

``postgres_lamassu_migrate`` writes it (``goose/command.py``) and ``postgres_lamassu_info`` reads it, so that a
status read without the tree still knows a schema is at its target when the copied version already was the
newest. One row per schema in table ``migration_checks`` of schema ``lamassu.JOURNAL_SCHEMA``, next to the copy
journal, upserted:

* ``tree_digest``: sha256 of the schema's migration files (names and contents, in name order);
* ``newest_version``: the newest version of the tree; ``goose_version``: the schema's version after the run;
* ``pending``: what was pending after the run (always 0: nothing else is recorded); ``checked_at``;
* ``schema_oid``: the record counts only while the schema of that OID carries the name, as the copy journal's.

It is written only in a database that already has the journal schema (a unified database the copy wrote to), so
a legacy database or any other database migrated with the module gets no new schema. Neither ``goose/`` nor
``dbcopy/`` is imported: both sides read this one floor down.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from ._pg import psycopg2, sql
from .errors import OperationFailed
from .lamassu import JOURNAL_SCHEMA
from .locks import CHECKS_LOCK, xact_lock
from .session import Session

CHECKS_TABLE = "migration_checks"

DDL = """CREATE TABLE IF NOT EXISTS {table} (
    schema_name text PRIMARY KEY,
    schema_oid oid NOT NULL,
    tree_digest text NOT NULL,
    newest_version bigint NOT NULL,
    goose_version bigint NOT NULL,
    pending integer NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now())"""

UPSERT = """INSERT INTO {table} (schema_name, schema_oid, tree_digest, newest_version, goose_version, pending, checked_at)
SELECT nspname, oid, %s, %s, %s, %s, now() FROM pg_namespace WHERE nspname = %s
ON CONFLICT (schema_name) DO UPDATE SET schema_oid = EXCLUDED.schema_oid, tree_digest = EXCLUDED.tree_digest,
    newest_version = EXCLUDED.newest_version, goose_version = EXCLUDED.goose_version,
    pending = EXCLUDED.pending, checked_at = EXCLUDED.checked_at"""


def _table() -> sql.Composable:
    return sql.Identifier(JOURNAL_SCHEMA, CHECKS_TABLE)


@dataclass(frozen=True)
class MigrationCheck:
    schema: str
    tree_digest: str
    newest_version: int
    goose_version: int
    pending: int = 0
    checked_at: str | None = None  # timestamptz::text; None for a record not written yet

    def same_as(self, other: MigrationCheck | None) -> bool:
        """Whether ``other`` records the same tree and versions (when it was written does not count)."""
        return other is not None and (
            (self.tree_digest, self.newest_version, self.goose_version, self.pending)
            == (other.tree_digest, other.newest_version, other.goose_version, other.pending)
        )

    def as_dict(self) -> dict:
        return {
            "tree_digest": self.tree_digest,
            "newest_version": self.newest_version,
            "goose_version": self.goose_version,
            "pending": self.pending,
            "checked_at": self.checked_at,
        }


def tree_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """sha256 of (name, contents) pairs, independent of their order; lengths delimit each part."""
    digest = hashlib.sha256()
    for name, contents in sorted(files):
        encoded = name.encode()
        for part in (encoded, contents):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def digest_of_paths(paths: Iterable[str]) -> str:
    """The digest of files on disk, each named by its base name."""

    def read(path: str) -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    return tree_digest((os.path.basename(path), read(path)) for path in paths)


def record_statements(check: MigrationCheck, table_exists: bool) -> list[tuple]:
    """The plan of one write, run in one transaction: the table when missing, then the upsert."""
    upsert = (
        sql.SQL(UPSERT).format(table=_table()),
        (check.tree_digest, check.newest_version, check.goose_version, check.pending, check.schema),
    )
    return ([] if table_exists else [(sql.SQL(DDL).format(table=_table()), None)]) + [upsert]


class MigrationChecks:
    """Reads and writes of ``migration_checks`` through a ``Session`` on the migrated (unified) database."""

    def __init__(self, session: Session):
        self.session = session

    def journal_schema_exists(self) -> bool:
        return bool(
            self.session.fetch_value("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (JOURNAL_SCHEMA,))
        )

    def exists(self) -> bool:
        return bool(
            self.session.fetch_value(
                "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL", (JOURNAL_SCHEMA, CHECKS_TABLE)
            )
        )

    def read(self, schema: str) -> MigrationCheck | None:
        """The record of ``schema`` while the schema it was written for still carries that name (a schema dropped
        and made again, by a rollback and a new copy, is not mistaken for it); None otherwise."""
        if not self.exists():
            return None
        row = self.session.fetch_one(
            sql.SQL(
                "SELECT c.schema_name, c.tree_digest, c.newest_version, c.goose_version, c.pending, "
                "c.checked_at::text FROM {} c JOIN pg_namespace n ON n.oid = c.schema_oid AND n.nspname = c.schema_name "
                "WHERE c.schema_name = %s"
            ).format(_table()),
            (schema,),
        )
        return MigrationCheck(*row) if row else None

    def plan(self, check: MigrationCheck) -> list[tuple] | None:
        """The statements that record ``check``: none when the recorded row is the same already, None when the
        database has no journal schema (nowhere to record)."""
        if not self.journal_schema_exists():
            return None
        table_exists = self.exists()
        if table_exists and check.same_as(self.read(check.schema)):
            return []
        return record_statements(check, table_exists)

    def apply(self, statements: list[tuple]) -> None:
        """Run a plan in one committed transaction on the session's autocommit connection."""
        conn = self.session.conn
        conn.autocommit = False
        try:
            xact_lock(self.session, CHECKS_LOCK)
            for query, params in statements:
                self.session.execute(query, params, what=f"{JOURNAL_SCHEMA}.{CHECKS_TABLE}")
            conn.commit()
        except (OperationFailed, psycopg2.Error):
            if not conn.closed:
                conn.rollback()
            raise
        finally:
            if not conn.closed:
                conn.autocommit = True


def read_or_none(session: Session, schema: str) -> tuple[MigrationCheck | None, str | None]:
    """(record, error): a login role that may not read the table gets the error, never a failure."""
    try:
        return MigrationChecks(session).read(schema), None
    except psycopg2.Error as exc:
        return None, str(exc).strip()
