# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A connection plus the list of state-changing statements a run executed or would execute."""

from __future__ import annotations

from ._pg import psycopg2
from .errors import OperationFailed


class Session:
    """Reads are not logged; every change goes through ``execute`` and lands in ``queries``.

    A ``dry_run`` session (check mode) still reads, but ``execute`` only renders and records the statement:
    the code that makes a change is the code that lists it, as alembic's offline mode does.
    """

    def __init__(self, conn, queries: list[str], dry_run: bool = False):
        self.conn = conn
        self.queries = queries
        self.dry_run = dry_run

    def render(self, query, params=None) -> str:
        with self.conn.cursor() as cur:
            return cur.mogrify(query, params).decode()

    def fetch_all(self, query, params=None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()

    def fetch_one(self, query, params=None):
        rows = self.fetch_all(query, params)
        return rows[0] if rows else None

    def fetch_value(self, query, params=None):
        row = self.fetch_one(query, params)
        return row[0] if row else None

    def execute(self, query, params=None, what: str = "") -> None:
        text = self.render(query, params)
        if self.dry_run:
            self.queries.append(text)
            return
        try:
            with self.conn.cursor() as cur:
                cur.execute(query, params)
        except psycopg2.Error as exc:
            target = f" ({what})" if what else ""
            raise OperationFailed(f"Statement failed{target}: {text}: {str(exc).strip()}") from None
        self.queries.append(text)

    def close(self) -> None:
        self.conn.close()
