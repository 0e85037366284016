# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Did the source take writes after its copy? The server's own counters, recorded at the copy's snapshot.

At the snapshot the copy records, per table of the source schema, ``pg_class.relfilenode`` (a ``TRUNCATE``
or a rewrite gives a new one) and the cumulative ``n_tup_ins``, ``n_tup_upd`` and ``n_tup_del`` of
``pg_stat_user_tables``, with the database's ``stats_reset`` time and a digest of the tables' columns. Those
counters only grow, so reading them again later is enough to tell, without reading a row:

* every counter, file node, column and table as recorded: nothing was written since (``[]``);
* a counter grew, a table was truncated, added, dropped or altered: the changes, by table;
* a counter went down or the statistics were reset: they cannot prove anything, and that is said.

Limits (documented in ``docs/db_to_schema.md``): the counters count rolled-back writes too (a false alarm,
never a miss), and a backend reports them when its transaction ends, at the latest when it is idle for a
second or exits; a write committed a moment before a re-run may show only at the next.
"""

from __future__ import annotations

from .._compat import zip_strict

STATS_QUERY = """
SELECT c.relname::text, c.relfilenode::bigint, coalesce(s.n_tup_ins, 0), coalesce(s.n_tup_upd, 0),
       coalesce(s.n_tup_del, 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE n.nspname = %(schema)s AND c.relkind = 'r'
ORDER BY 1
"""
STRUCTURE_QUERY = """
SELECT md5(coalesce(string_agg(format('%%s.%%s:%%s:%%s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                                      a.attnotnull), ',' ORDER BY c.relname, a.attnum), ''))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
WHERE n.nspname = %(schema)s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
"""
RESET_QUERY = "SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()"
COUNTERS = ("inserts", "updates", "deletes")
SHOWN = 10


def read(session, schema: str) -> dict:
    """The counters of ``schema`` in the session's database, as the journal keeps them (JSON-ready)."""
    tables = {name: [node, *counts] for name, node, *counts in session.fetch_all(STATS_QUERY, {"schema": schema})}
    return {
        "stats_reset": session.fetch_value(RESET_QUERY),
        "structure": session.fetch_value(STRUCTURE_QUERY, {"schema": schema}),
        "tables": tables,
    }


def compare(recorded: dict | None, current: dict) -> list[str]:
    """What changed since ``recorded`` (``[]``: nothing); pure, so the rules are unit-tested without a server."""
    if not recorded:
        return ["the copy was recorded without the source's statistics (an older version): cannot tell"]
    if recorded.get("stats_reset") != current.get("stats_reset"):
        return [
            f"the statistics of the source were reset since the copy ({current.get('stats_reset') or 'unknown time'}),"
            " so they cannot prove that nothing changed"
        ]
    changes: list[str] = []
    before, after = recorded.get("tables", {}), current.get("tables", {})
    changes += [f"table {name} was dropped" for name in sorted(set(before) - set(after))]
    changes += [f"table {name} was created" for name in sorted(set(after) - set(before))]
    for name in sorted(set(before) & set(after)):
        (node_before, *counts_before), (node_after, *counts_after) = before[name], after[name]
        if node_before != node_after:
            changes.append(f"table {name} was truncated or rewritten")
            continue
        grown = [f"{b - a} {what}" for what, a, b in zip_strict(COUNTERS, counts_before, counts_after) if b > a]
        if any(b < a for a, b in zip_strict(counts_before, counts_after)):
            changes.append(f"the statistics of table {name} were reset, so they cannot prove that nothing changed")
        elif grown:
            changes.append(f"table {name}: {', '.join(grown)}")
    if recorded.get("structure") != current.get("structure") and not changes:
        changes.append("the columns of the source tables changed")
    return changes


def summary(changes: list[str]) -> str:
    shown = "; ".join(changes[:SHOWN])
    return shown + (f"; and {len(changes) - SHOWN} more" if len(changes) > SHOWN else "")
