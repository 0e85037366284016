# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The switch's verification, in the short window: what changed since the snapshot, and the row counts.

The live copy was verified against the snapshot (``verify``, as the offline copy), so here only the rows the apply
touched are compared, by key, on both sides (their number and hash sum, ``verify.checksum_query``), plus the row
count of every table. The window therefore grows with the writes during the live phase, not with the data.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from .._pg import sql
from ..session import Session
from . import online, verify
from .catalog_model import SourceCatalog, Table

KEYS_PER_QUERY = 5000


def keyed_rows(table: Table, columns: list[str], keys: list[tuple]) -> sql.Composable:
    """The ``WHERE`` of the rows of ``table`` (alias ``r``) whose key is one of ``keys`` (text values); the keys are
    literals, so the query runs without parameters (a ``%`` in a name stays a name)."""
    types = {c.name: c.type for c in table.columns}
    names = [sql.Identifier(f"k{i}") for i in range(len(columns))]
    return sql.SQL("({}) IN (SELECT {} FROM unnest({}) AS u({}))").format(
        sql.SQL(", ").join(sql.Identifier("r", c) for c in columns),
        sql.SQL(", ").join(
            sql.SQL("{}.{}::{}").format(sql.Identifier("u"), n, sql.SQL(types[c])) for n, c in zip(names, columns)
        ),
        sql.SQL(", ").join(
            sql.SQL("{}::text[]").format(sql.Literal([key[i] for key in keys])) for i in range(len(columns))
        ),
        sql.SQL(", ").join(names),
    )


def touched(session: Session, target: str) -> dict[tuple[str, tuple], list[tuple]]:
    """The keys of the rows the apply touched, by table and key columns (each key is stored as JSON: its
    columns and their text values, as the slot named them)."""
    rows = session.fetch_all(
        online.compose("SELECT table_name, key FROM {schema}.{rows} WHERE target_schema = %s ORDER BY 1, 2"),
        (target,),
    )
    found: dict[tuple[str, tuple], list[tuple]] = {}
    for name, key in rows:
        columns, values = json.loads(key)
        found.setdefault((name, tuple(columns)), []).append(tuple(values))
    return found


def compare(catalog: SourceCatalog, source: Session, target: Session, staging: str, keys: dict) -> dict:
    """``{"rows_checked": n, "problems": [...], "counts": {table: rows}}``; ``target`` has the staging schema
    first on its search path (the key columns' types are named as the catalog names them). Each side counts
    its tables in one statement, both sides at once (the counts are the part that grows with the data)."""
    problems: list[str] = []
    checked = 0
    names = [table.name for table in catalog.tables]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counted = pool.submit(count_rows, source, catalog.schema, names)
        copied = count_rows(target, staging, names)
        in_source = counted.result()
    for table in catalog.tables:
        if in_source[table.name] != copied[table.name]:
            problems.append(
                f"table {table.name}: {in_source[table.name]} rows in the source, {copied[table.name]} in the copy"
            )
            continue
        for (name, columns), table_keys in keys.items():
            if name == table.name:
                checked += len(table_keys)
                problem = compare_keys(catalog.schema, staging, table, list(columns), table_keys, source, target)
                if problem:
                    problems.append(problem)
    return {"rows_checked": checked, "problems": problems, "counts": copied}


def count_rows(session: Session, schema: str, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    row = session.fetch_one(
        sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(sql.SQL("({})").format(verify.count_query(schema, name)) for name in names)
        )
    )
    return dict(zip(names, row))


def compare_keys(schema: str, staging: str, table: Table, columns: list[str], keys: list[tuple], source, target):
    """A problem when the rows of ``keys`` differ between the two sides (their number or hash sum), else None."""
    for start in range(0, len(keys), KEYS_PER_QUERY):
        batch = keys[start : start + KEYS_PER_QUERY]
        where = keyed_rows(table, columns, batch)
        mine = source.fetch_one(verify.checksum_query(schema, table, False, where))
        theirs = target.fetch_one(verify.checksum_query(staging, table, False, where))
        if tuple(mine) != tuple(theirs):
            return (
                f"table {table.name}: the {len(batch)} rows changed during the live copy differ "
                f"({mine[0]} of them in the source, {theirs[0]} in the copy, or their contents)"
            )
    return None
