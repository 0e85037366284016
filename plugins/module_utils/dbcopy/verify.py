# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server-side row counts and order-independent content checksums.

``count`` compares the rows that ``COPY TO`` read from the snapshot with
``count(*)`` of the loaded table.

``checksum`` computes, on both sides and in the server, the number of rows
and the sum, as ``numeric`` so nothing overflows, of a 64-bit hash of each
row's copied columns:

* ``hash_record_extended(ROW(c1, c2, ...), 0)`` (PostgreSQL 14 and later)
  when every column has a built-in type with an extended hash function (the
  probe query finds out): it hashes the values themselves, with the hash
  functions of their types, without printing them, so it is much cheaper
  than the text hash (``bench/README.md``, "What was tried in the module"). Not for other
  types: an enum value, for one, hashes as its OID, which differs in the copy;
* otherwise ``hashtextextended(ROW(c1, c2, ...)::text COLLATE "C", 0)``, the
  hash of the row's text (types such as ``json`` or ``point`` have no hash
  function). Both sides use the same session settings
  (``stream.SESSION_SETTINGS``), so a value prints the same text on both.

A sum, unlike XOR, counts equal duplicate rows once each (two copies of a row
do not cancel out), and it does not depend on the order in which rows are
read, so a table copied in page-range pieces is measured in pieces and the
sums are added up; the chance that a differing table sums the same is about
2^-64. The source side is computed by the same scan that copies the rows:
the source ``COPY`` prints each row's hash as one more column, which the
module takes off each row (``stream.RowHashes``) and adds up before the row
goes on to the target, so the source is read once. The target side runs on
the loaded staging table. Hashing happens in the server on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._pg import sql
from .catalog_model import Table

VERIFY_MODES = ("none", "count", "checksum")

# The SQLSTATE of "could not identify an extended hash function for type ...".
UNDEFINED_FUNCTION = "42883"


@dataclass(frozen=True)
class TableCheck:
    rows: int
    checksum: str | None = None


@dataclass
class Sums:
    """Rows and hash sum of a table, added up over its pieces."""

    rows: int = 0
    total: int = 0

    def add(self, rows: int, total) -> None:
        self.rows += rows
        self.total += int(total)

    def check(self) -> TableCheck:
        return TableCheck(self.rows, f"{self.rows}:{self.total}")


def count_query(schema: str, table: str) -> sql.Composable:
    return sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))


def _row(table: Table, alias: str) -> sql.Composable:
    return sql.SQL("ROW({})").format(sql.SQL(", ").join(sql.Identifier(alias, c) for c in table.copy_columns))


def row_hash(table: Table, hashed_records: bool) -> sql.Composable:
    """The 64-bit hash of a row of ``table`` under the alias ``r``."""
    row = _row(table, "r")
    if hashed_records:
        return sql.SQL("hash_record_extended({}, 0)").format(row)
    return sql.SQL('hashtextextended({}::text COLLATE "C", 0)').format(row)


def checksum_query(
    schema: str, table: Table, hashed_records: bool, where: sql.Composable | None = None
) -> sql.Composable:
    """Rows and hash sum of ``schema.table`` (of the rows ``where`` selects, all without it)."""
    return sql.SQL("SELECT count(*), coalesce(sum({}::numeric), 0) FROM {} AS r{}").format(
        row_hash(table, hashed_records),
        sql.Identifier(schema, table.name),
        sql.SQL(" WHERE {}").format(where) if where is not None else sql.SQL(""),
    )


def probe_query(schema: str, table: Table) -> sql.Composable:
    """Hashes one row of NULLs of the table's column types: fails when a type has no extended hash function."""
    return sql.SQL("SELECT hash_record_extended({}, 0) FROM (SELECT) AS one LEFT JOIN {} AS r ON false").format(
        _row(table, "r"), sql.Identifier(schema, table.name)
    )


def measure(cursor, query: sql.Composable) -> tuple[int, int]:
    """(rows, hash sum) of a ``checksum_query``."""
    cursor.execute(query)
    rows, total = cursor.fetchone()
    return rows, int(total)


def mismatch(table: str, source: TableCheck | None, target: TableCheck | None) -> str | None:
    """A message naming the table when the two sides differ, else ``None``."""
    if source is None or target is None:
        return None
    if source.rows != target.rows:
        return f"table {table}: {source.rows} rows in the source, {target.rows} in the copy"
    if source.checksum != target.checksum:
        return f"table {table}: same number of rows ({source.rows}) but different content checksums"
    return None


def changes_since_copy(recorded: list[dict], current: dict[str, TableCheck]) -> list[str]:
    """How a schema differs from the copy the journal recorded (``tables`` of the journal row): tables added or
    gone, row counts, and checksums where the copy recorded one."""
    then = {table["name"]: table for table in recorded}
    changes = [f"table {name} was added" for name in sorted(current.keys() - then.keys())]
    changes += [f"table {name} is gone" for name in sorted(then.keys() - current.keys())]
    for name in sorted(current.keys() & then.keys()):
        rows, checksum, now = then[name].get("rows"), then[name].get("checksum"), current[name]
        if rows != now.rows:
            changes.append(f"table {name}: {rows} rows at the copy, {now.rows} now")
        elif None not in (checksum, now.checksum) and now.checksum != checksum:
            changes.append(f"table {name}: rows changed since the copy (same number, different checksum)")
    return changes
