# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The goose version table of one schema: creating it and the statements that write it (reading: goose_history)."""

from __future__ import annotations

from .._pg import sql
from ..goose_history import GOOSE_POSTGRES_DDL, History, read_history, version_table_exists
from ..session import Session


class VersionStore:
    """Reads and writes ``<schema>.<table>`` exactly as goose's Postgres store does."""

    def __init__(self, session: Session, schema: str, table: str):
        self.session = session
        self.schema = schema
        self.table = table

    @property
    def qualified(self):
        return sql.Identifier(self.schema, self.table)

    def exists(self) -> bool:
        return version_table_exists(self.session, self.schema, self.table)

    def owner_to_take(self) -> str | None:
        """The owner of the table when it is not the login role and the login role may take it (``SET ROLE``: a
        superuser, or a member); otherwise None."""
        row = self.session.fetch_one(
            """
            SELECT pg_get_userbyid(c.relowner), c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
                   AND pg_has_role(current_user, c.relowner, 'MEMBER')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
            """,
            (self.schema, self.table),
        )
        return row[0] if row and row[1] else None

    def read(self) -> History:
        """Every row (``is_applied`` included); an absent table reads as an empty history."""
        history = read_history(self.session, self.schema, self.table)
        return History() if history is None else history

    def create_statements(self) -> list[tuple]:
        """Schema (when missing), goose's table and its version-0 row: run in one transaction."""
        return [
            (sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)), None),
            (sql.SQL(GOOSE_POSTGRES_DDL).format(table=self.qualified), None),
            self.insert_statement(0),
        ]

    def insert_statement(self, version: int) -> tuple:
        query = sql.SQL("INSERT INTO {} (version_id, is_applied) VALUES (%s, %s)").format(self.qualified)
        return query, (version, True)

    def delete_statement(self, version: int) -> tuple:
        return sql.SQL("DELETE FROM {} WHERE version_id=%s").format(self.qualified), (version,)
