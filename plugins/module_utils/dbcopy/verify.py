# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server-side row counts and order-independent content checksums.

The checksum of a table is the number of rows and the sum, as ``numeric`` so
nothing overflows, of a 64-bit hash of each row's text
(``hashtextextended(ROW(r.*)::text COLLATE "C", 0)``, the server's own fast
hash; ``md5`` costs about 2.5 times as much for no gain against accidental
differences, the chance that a differing table sums the same is about
2^-64). A sum, unlike XOR, counts equal duplicate rows once each (two copies
of a row do not cancel out), and it does not depend on the order in which
rows are read. Both sides use the same session settings
(``stream.SESSION_SETTINGS``), so a value prints the same text on both. The
source side runs in the copy's snapshot, the target side on the loaded
staging table; the work happens in the server, no row reaches the client.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._pg import sql

VERIFY_MODES = ("none", "count", "checksum")

_CHECKSUM = """
SELECT count(*), coalesce(sum(hashtextextended(ROW(r.*)::text COLLATE "C", 0)::numeric), 0) FROM {table} AS r
"""


@dataclass(frozen=True)
class TableCheck:
    rows: int
    checksum: str | None = None


def count_query(schema: str, table: str) -> sql.Composable:
    return sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))


def checksum_query(schema: str, table: str) -> sql.Composable:
    return sql.SQL(_CHECKSUM).format(table=sql.Identifier(schema, table))


def measure(cursor_or_conn, mode: str, schema: str, table: str) -> TableCheck | None:
    """Count or checksum ``schema.table`` through a cursor or a connection (``None`` for mode ``none``)."""
    if hasattr(cursor_or_conn, "cursor"):
        with cursor_or_conn.cursor() as cursor:
            return measure(cursor, mode, schema, table)
    cursor = cursor_or_conn
    if mode == "count":
        cursor.execute(count_query(schema, table))
        return TableCheck(cursor.fetchone()[0])
    if mode == "checksum":
        cursor.execute(checksum_query(schema, table))
        rows, total = cursor.fetchone()
        return TableCheck(rows, f"{rows}:{total}")
    return None


def mismatch(table: str, source: TableCheck | None, target: TableCheck | None) -> str | None:
    """A message naming the table when the two sides differ, else ``None``."""
    if source is None or target is None:
        return None
    if source.rows != target.rows:
        return f"table {table}: {source.rows} rows in the source, {target.rows} in the copy"
    if source.checksum != target.checksum:
        return f"table {table}: same number of rows ({source.rows}) but different content checksums"
    return None
