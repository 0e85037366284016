# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The statement that applies one decoded change (``pgoutput``) to the table of the same name in another schema.

Values travel as the text pgoutput sent, in plain parameters: PostgreSQL reads an untyped literal with the input
function of the column it is assigned to or compared with, so bytea, jsonb, arrays, timestamps, enums of the copy's
own schema and the rest come back as they were (given the source's ``pgoutput.SESSION_OPTIONS``).

A row is found by its replica identity key: from the old key pgoutput sent ('K'), else from the new row when the
key did not change. Under REPLICA IDENTITY FULL (or with no key column at all) the whole old row ('O') identifies
it, NULLs included, and only one of several equal rows changes, as on the source.
"""

from __future__ import annotations

from typing import Sequence

from .._pg import sql
from .pgoutput import UNCHANGED, Delete, Insert, Relation, Transaction, Truncate, Tuple, Update, Value


def statement(
    change: Insert | Update | Delete | Truncate, relation: Relation | Sequence[Relation], schema: str
) -> tuple[sql.Composed, list]:
    """The statement and its parameters applying ``change`` to ``schema``; ``relation`` describes the changed table
    (for a Truncate, the tables it names, in order)."""
    if isinstance(change, Truncate):
        relations = (relation,) if isinstance(relation, Relation) else tuple(relation)
        return _truncate(change, relations, schema)
    if not isinstance(relation, Relation):
        raise TypeError(f"A {type(change).__name__} applies to one Relation, not {relation!r}")
    if isinstance(change, Insert):
        return _insert(change, relation, schema)
    if isinstance(change, Update):
        return _update(change, relation, schema)
    if isinstance(change, Delete):
        return _delete(change, relation, schema)
    raise TypeError(f"Not a row change or truncate: {change!r}")


def inline(statement: sql.Composable, params: Sequence) -> sql.Composable:
    """``statement`` with each placeholder replaced by its parameter as a literal, in order: a statement that runs
    without parameters, so a ``%`` in a name is never read as a placeholder (the apply sends many at once)."""
    values = iter(params)

    def walk(part: sql.Composable) -> sql.Composable:
        if isinstance(part, sql.Placeholder):
            return sql.Literal(next(values))
        if isinstance(part, sql.Composed):
            return sql.Composed([walk(child) for child in part.seq])
        return part

    composed = walk(statement)
    if next(values, UNCHANGED) is not UNCHANGED:
        raise ValueError("more parameters than placeholders")
    return composed


def transaction_statements(transaction: Transaction, schema: str) -> list[tuple[sql.Composed, list]]:
    """The statements of every change of a transaction from ``pgoutput.Transactions``, in order."""
    return [
        statement(change, change.relations if isinstance(change, Truncate) else change.relation, schema)
        for change in transaction.changes
    ]


def key_values(change: Insert | Update | Delete, relation: Relation) -> tuple:
    """The key (text values in key-column order) of the row ``change`` leaves: the new key of an insert or update,
    the old key of a delete. Under REPLICA IDENTITY FULL every column is a key column."""
    keys = relation.key_columns
    if not keys:
        raise ValueError(f"Table {relation.name!r} has no replica identity key: its rows cannot be named by key")
    if isinstance(change, Delete):
        return tuple(value for _name, value in _pick(change.old, relation, keys))
    if isinstance(change, Insert):
        return tuple(value for _name, value in _pick(change.new, relation, keys))
    if isinstance(change, Update):
        new = _pick(change.new, relation, keys)
        old = _pick(change.old, relation, keys) if change.old is not None else [(None, UNCHANGED)] * len(keys)
        # An unchanged TOASTed key is the old key's value (PostgreSQL then sends the old key, flattened).
        values = tuple(
            old_value if value is UNCHANGED else value for (_name, value), (_old_name, old_value) in zip(new, old)
        )
        if UNCHANGED in values:
            raise ValueError(f"Update of table {relation.name!r} left a key value unsent (unchanged TOAST, no old key)")
        return values
    raise TypeError(f"Not a row change: {change!r}")


def _table(relation: Relation, schema: str) -> sql.Identifier:
    return sql.Identifier(schema, relation.name)


def _values(row: Tuple, relation: Relation) -> list[tuple[str, Value]]:
    if len(row.values) != len(relation.columns):
        raise ValueError(
            f"Change of table {relation.name!r} has {len(row.values)} values for its {len(relation.columns)} columns"
        )
    return [(column.name, value) for column, value in zip(relation.columns, row.values)]


def _pick(row: Tuple, relation: Relation, columns) -> list[tuple[str, Value]]:
    wanted = {column.name for column in columns}
    return [(name, value) for name, value in _values(row, relation) if name in wanted]


def _insert(change: Insert, relation: Relation, schema: str) -> tuple[sql.Composed, list]:
    pairs = _values(change.new, relation)
    if any(value is UNCHANGED for _name, value in pairs):
        raise ValueError(f"Insert into table {relation.name!r} without every value (unchanged TOAST)")
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        _table(relation, schema),
        sql.SQL(", ").join(sql.Identifier(name) for name, _value in pairs),
        sql.SQL(", ").join(sql.Placeholder() for _pair in pairs),
    )
    return query, [value for _name, value in pairs]


def _update(change: Update, relation: Relation, schema: str) -> tuple[sql.Composed, list]:
    new = _values(change.new, relation)
    assignments = [(name, value) for name, value in new if value is not UNCHANGED]
    if not assignments:
        # Every value sent was unchanged TOAST: the row stays as it is, but the statement still finds it.
        assignments_sql = sql.SQL("{0} = {0}").format(sql.Identifier(new[0][0]))
    else:
        assignments_sql = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder()) for name, _value in assignments
        )
    identity, whole_row = _identity(change.old, change.new, relation, "Update")
    where, where_params = _where(relation, schema, identity, whole_row)
    query = sql.SQL("UPDATE {} SET {} WHERE {}").format(_table(relation, schema), assignments_sql, where)
    return query, [value for _name, value in assignments] + where_params


def _delete(change: Delete, relation: Relation, schema: str) -> tuple[sql.Composed, list]:
    identity, whole_row = _identity(change.old, None, relation, "Delete")
    where, params = _where(relation, schema, identity, whole_row)
    return sql.SQL("DELETE FROM {} WHERE {}").format(_table(relation, schema), where), params


def _truncate(change: Truncate, relations: tuple[Relation, ...], schema: str) -> tuple[sql.Composed, list]:
    if not relations:
        raise ValueError("Truncate of no table")
    parts = [sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(_table(relation, schema) for relation in relations))]
    if change.restart_identity:
        parts.append(sql.SQL("RESTART IDENTITY"))
    if change.cascade:
        parts.append(sql.SQL("CASCADE"))
    return sql.SQL(" ").join(parts), []


def _identity(
    old: Tuple | None, new: Tuple | None, relation: Relation, kind: str
) -> tuple[list[tuple[str, Value]], bool]:
    """The (column, value) pairs naming the changed row, and whether they are the whole row rather than a key."""
    keys = relation.key_columns
    whole_row = relation.replica_identity == "f" or not keys
    if old is not None and old.kind == "O" and whole_row:
        return [(name, value) for name, value in _values(old, relation) if value is not UNCHANGED], True
    if not keys:
        raise ValueError(
            f"{kind} of table {relation.name!r}, which has no replica identity key and came without its old row"
        )
    row = old if old is not None else new
    if row is None:
        raise ValueError(f"{kind} of table {relation.name!r} came without its old key")
    pairs = _pick(row, relation, keys)
    if any(value is UNCHANGED for _name, value in pairs):
        raise ValueError(f"{kind} of table {relation.name!r} left a key value unsent (unchanged TOAST, no old key)")
    return pairs, whole_row


def _where(
    relation: Relation, schema: str, pairs: list[tuple[str, Value]], whole_row: bool
) -> tuple[sql.Composable, list]:
    if not pairs:
        raise ValueError(f"Change of table {relation.name!r} came without a value to find its row by")
    # "= value" or "IS NULL" rather than IS NOT DISTINCT FROM: the same rows, and a key index can find them.
    conditions = sql.SQL(" AND ").join(
        sql.SQL("{} IS NULL").format(sql.Identifier(name))
        if value is None
        else sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder())
        for name, value in pairs
    )
    params = [value for _name, value in pairs if value is not None]
    if not whole_row:
        return conditions, params
    # Equal rows are all found: change one, as the source did.
    return sql.SQL("ctid = (SELECT ctid FROM {} WHERE {} LIMIT 1)").format(_table(relation, schema), conditions), params


class Renderer:
    """The statements of changes as text ready to send, fast: the statement of each shape of change (its table,
    its kind, which values are NULL or unchanged TOAST) is composed once, with ``statement``, into a template;
    a change of that shape then only has its values quoted into it (``cursor.mogrify``). A ``%`` in a name is
    doubled in the template, so it stays a name."""

    def __init__(self, schema: str):
        self.schema = schema
        self._templates: dict = {}

    def render(self, cursor, change, relation) -> bytes:
        """The statement of ``change`` with its values, quoted by ``cursor`` (of the connection it will run on)."""
        if isinstance(change, Truncate):
            return cursor.mogrify(statement(change, relation, self.schema)[0])
        rows = _rows(change)
        key = (id(relation), type(change), tuple(row.kind if row else None for row in rows), _mask(rows))
        found = self._templates.get(key)
        if found is None:
            probe = _probe(change, rows)
            query, picks = statement(probe, relation, self.schema)
            # The relation is kept with its template: its id names no other relation while the template lives.
            found = self._templates[key] = (_template(query, cursor), picks, relation)
        template, picks, _relation = found
        # A NULL stays NULL in the probe: its parameter is None, in every change of this shape.
        return cursor.mogrify(template, [None if pick is None else rows[pick[0]].values[pick[1]] for pick in picks])


def _rows(change) -> tuple:
    """The tuples of a row change, in the order the probe numbers them: new (None for a delete), old."""
    return (getattr(change, "new", None), getattr(change, "old", None))


def _mask(rows: tuple) -> tuple:
    return tuple(
        tuple(0 if value is None else 1 if value is UNCHANGED else 2 for value in row.values) if row else None
        for row in rows
    )


def _probe(change, rows: tuple):
    """``change`` with each value replaced by where it is, ``(row, index)``: NULLs and unchanged values kept, so
    ``statement`` composes the same statement and returns, as its parameters, where each one comes from."""

    def probe(number: int, row: Tuple | None) -> Tuple | None:
        if row is None:
            return None
        values = tuple(
            value if value is None or value is UNCHANGED else (number, index) for index, value in enumerate(row.values)
        )
        return Tuple(row.kind, values)

    new, old = (probe(number, row) for number, row in enumerate(rows))
    if isinstance(change, Insert):
        return Insert(change.relation_oid, new, change.relation)
    if isinstance(change, Update):
        return Update(change.relation_oid, old, new, change.relation)
    return Delete(change.relation_oid, old, change.relation)


def _template(query: sql.Composable, context) -> str:
    """``query`` as text with its placeholders as ``%s`` and every other ``%`` doubled."""
    if isinstance(query, sql.Placeholder):
        return "%s"
    if isinstance(query, sql.Composed):
        return "".join(_template(part, context) for part in query.seq)
    return query.as_string(context).replace("%", "%%")
