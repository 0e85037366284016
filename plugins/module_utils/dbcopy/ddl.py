# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Statements that rebuild a source catalog in the staging schema.

The definitions read by ``catalog`` are unqualified for source objects; every
statement here runs with ``search_path`` = staging schema, ``pg_catalog`` and
the extension schemas (set by the copy before it runs them), so those definitions resolve to
the staging objects. The objects this module names itself are qualified with
the staging schema.

The statements come in the order of the copy:

* ``pre_data``: types, sequences, tables (columns, defaults, identity,
  validated CHECK constraints), sequence ownership, comments;
* ``table_post_data``: one table's primary key, unique and exclusion
  constraints and indexes, built once its rows are in;
* ``final``: foreign keys and NOT VALID checks, views, owners, grants;
* ``sequence_values``: the sequence positions of the source.
"""

from __future__ import annotations

from .._pg import sql
from .catalog_model import Column, Grant, Sequence, SourceCatalog, Table, TypeDef, view_order

POST_DATA_KINDS = ("p", "u", "x")


def _comment(kind: str, target: sql.Composable, text: str | None) -> list[sql.Composable]:
    if text is None:
        return []
    return [sql.SQL("COMMENT ON {} {} IS {}").format(sql.SQL(kind), target, sql.Literal(text))]


def _grantee(name: str) -> sql.Composable:
    return sql.SQL("PUBLIC") if name == "PUBLIC" else sql.Identifier(name)


def grant_statements(kind: str, target: sql.Composable, owner: str, acl: list[Grant] | None) -> list[sql.Composable]:
    """Make the ACL of ``target`` exactly ``acl``; ``None`` is the built-in default and needs nothing."""
    if acl is None:
        return []
    statements = [sql.SQL("REVOKE ALL ON {} {} FROM PUBLIC, {}").format(sql.SQL(kind), target, sql.Identifier(owner))]
    statements.extend(_grants(kind, target, acl, None))
    return statements


def _grants(kind: str, target: sql.Composable, acl: list[Grant], column: str | None) -> list[sql.Composable]:
    grouped: dict[tuple[str, bool], list[str]] = {}
    for grant in acl:
        grouped.setdefault((grant.grantee, grant.grantable), []).append(grant.privilege)
    statements = []
    for (grantee, grantable), privileges in grouped.items():
        columns = sql.SQL(" ({})").format(sql.Identifier(column)) if column else sql.SQL("")
        statements.append(
            sql.SQL("GRANT {privileges}{columns} ON {kind} {target} TO {grantee}{option}").format(
                privileges=sql.SQL(", ").join(sql.SQL(p) for p in sorted(privileges)),
                columns=columns,
                kind=sql.SQL(kind),
                target=target,
                grantee=_grantee(grantee),
                option=sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
            )
        )
    return statements


def _sequence_options(seq: Sequence, with_type: bool) -> sql.Composable:
    parts = [sql.SQL("AS {}").format(sql.SQL(seq.data_type))] if with_type else []
    parts.append(
        sql.SQL("INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {} {}").format(
            sql.Literal(seq.increment),
            sql.Literal(seq.minimum),
            sql.Literal(seq.maximum),
            sql.Literal(seq.start),
            sql.Literal(seq.cache),
            sql.SQL("CYCLE" if seq.cycle else "NO CYCLE"),
        )
    )
    return sql.SQL(" ").join(parts)


def _type_statement(staging: str, typ: TypeDef) -> sql.Composable:
    name = sql.Identifier(staging, typ.name)
    if typ.kind == "enum":
        return sql.SQL("CREATE TYPE {} AS ENUM ({})").format(
            name, sql.SQL(", ").join(sql.Literal(label) for label in typ.labels)
        )
    if typ.kind == "domain":
        parts = [sql.SQL("CREATE DOMAIN {} AS {}").format(name, sql.SQL(typ.base))]
        if typ.collation:
            parts.append(sql.SQL("COLLATE {}").format(sql.SQL(typ.collation)))
        if typ.default is not None:
            parts.append(sql.SQL("DEFAULT {}").format(sql.SQL(typ.default)))
        if typ.not_null:
            parts.append(sql.SQL("NOT NULL"))
        for check in typ.checks:
            parts.append(sql.SQL("CONSTRAINT {} {}").format(sql.Identifier(check.name), sql.SQL(check.definition)))
        return sql.SQL(" ").join(parts)
    if typ.kind == "range":
        options = []
        for option, value in typ.range_options:
            rendered = sql.Identifier(staging, value) if option == "MULTIRANGE_TYPE_NAME" else sql.SQL(value)
            options.append(sql.SQL("{} = {}").format(sql.SQL(option), rendered))
        return sql.SQL("CREATE TYPE {} AS RANGE ({})").format(name, sql.SQL(", ").join(options))
    attributes = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(a.name),
            sql.SQL(a.type),
            sql.SQL(" COLLATE {}").format(sql.SQL(a.collation)) if a.collation else sql.SQL(""),
        )
        for a in typ.attributes
    ]
    return sql.SQL("CREATE TYPE {} AS ({})").format(name, sql.SQL(", ").join(attributes))


def _column(staging: str, table: Table, column: Column, sequences: dict[tuple[str, str], Sequence]) -> sql.Composable:
    parts = [sql.Identifier(column.name), sql.SQL(column.type)]
    if column.collation:
        parts.append(sql.SQL("COLLATE {}").format(sql.SQL(column.collation)))
    if column.generated:
        parts.append(sql.SQL("GENERATED ALWAYS AS ({}) STORED").format(sql.SQL(column.default or "")))
    elif column.identity:
        seq = sequences.get((table.name, column.name))
        options = (
            sql.SQL(" (SEQUENCE NAME {} {})").format(sql.Identifier(staging, seq.name), _sequence_options(seq, False))
            if seq
            else sql.SQL("")
        )
        parts.append(
            sql.SQL("GENERATED {} AS IDENTITY{}").format(
                sql.SQL("ALWAYS" if column.identity == "a" else "BY DEFAULT"), options
            )
        )
    elif column.default is not None:
        parts.append(sql.SQL("DEFAULT {}").format(sql.SQL(column.default)))
    if column.not_null:
        parts.append(sql.SQL("NOT NULL"))
    return sql.SQL(" ").join(parts)


def _table_statement(staging: str, table: Table, sequences: dict[tuple[str, str], Sequence]) -> sql.Composable:
    elements = [_column(staging, table, c, sequences) for c in table.columns]
    elements.extend(
        sql.SQL("CONSTRAINT {} {}").format(sql.Identifier(c.name), sql.SQL(c.definition))
        for c in table.constraints
        if c.kind == "c" and c.validated
    )
    options = (
        sql.SQL(" WITH ({})").format(sql.SQL(", ").join(sql.SQL(o) for o in table.options))
        if table.options
        else sql.SQL("")
    )
    return sql.SQL("CREATE {}TABLE {} ({}){}").format(
        sql.SQL("UNLOGGED " if table.unlogged else ""),
        sql.Identifier(staging, table.name),
        sql.SQL(", ").join(elements),
        options,
    )


def pre_data(catalog: SourceCatalog, staging: str) -> list[sql.Composable]:
    """Types, sequences and tables without the indexes and constraints that are cheaper to build after the data."""
    statements: list[sql.Composable] = []
    order = {"enum": 0, "domain": 1, "range": 2, "composite": 3}
    for typ in sorted(catalog.types, key=lambda t: order[t.kind]):
        statements.append(_type_statement(staging, typ))
    identity = {s.owned_by: s for s in catalog.sequences if s.identity and s.owned_by}
    for seq in catalog.sequences:
        if not seq.identity:
            statements.append(
                sql.SQL("CREATE SEQUENCE {} {}").format(sql.Identifier(staging, seq.name), _sequence_options(seq, True))
            )
    for table in catalog.tables:
        statements.append(_table_statement(staging, table, identity))
    for seq in catalog.sequences:
        if seq.owned_by and not seq.identity:
            statements.append(
                sql.SQL("ALTER SEQUENCE {} OWNED BY {}.{}").format(
                    sql.Identifier(staging, seq.name),
                    sql.Identifier(staging, seq.owned_by[0]),
                    sql.Identifier(seq.owned_by[1]),
                )
            )
    for typ in catalog.types:
        kind = "DOMAIN" if typ.kind == "domain" else "TYPE"
        statements.extend(_comment(kind, sql.Identifier(staging, typ.name), typ.comment))
        for attribute in typ.attributes:
            statements.extend(_comment("COLUMN", sql.Identifier(staging, typ.name, attribute.name), attribute.comment))
        for check in typ.checks:
            target = sql.SQL("{} ON DOMAIN {}").format(sql.Identifier(check.name), sql.Identifier(staging, typ.name))
            statements.extend(_comment("CONSTRAINT", target, check.comment))
    for seq in catalog.sequences:
        statements.extend(_comment("SEQUENCE", sql.Identifier(staging, seq.name), seq.comment))
    for table in catalog.tables:
        statements.extend(_comment("TABLE", sql.Identifier(staging, table.name), table.comment))
        for column in table.columns:
            statements.extend(_comment("COLUMN", sql.Identifier(staging, table.name, column.name), column.comment))
        for constraint in table.constraints:
            if constraint.kind == "c" and constraint.validated:
                target = sql.SQL("{} ON {}").format(
                    sql.Identifier(constraint.name), sql.Identifier(staging, table.name)
                )
                statements.extend(_comment("CONSTRAINT", target, constraint.comment))
    return statements


def table_post_data(table: Table, staging: str) -> list[sql.Composable]:
    """Primary key, unique and exclusion constraints and plain indexes of one loaded table."""
    qualified = sql.Identifier(staging, table.name)
    statements: list[sql.Composable] = []
    for constraint in table.constraints:
        if constraint.kind in POST_DATA_KINDS:
            statements.append(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    qualified, sql.Identifier(constraint.name), sql.SQL(constraint.definition)
                )
            )
            target = sql.SQL("{} ON {}").format(sql.Identifier(constraint.name), qualified)
            statements.extend(_comment("CONSTRAINT", target, constraint.comment))
            statements.extend(_comment("INDEX", sql.Identifier(staging, constraint.name), constraint.index_comment))
    for index in table.indexes:
        statements.append(
            sql.SQL("CREATE {}INDEX {} ON {} USING {}").format(
                sql.SQL("UNIQUE " if index.unique else ""), sql.Identifier(index.name), qualified, sql.SQL(index.body)
            )
        )
        statements.extend(_comment("INDEX", sql.Identifier(staging, index.name), index.comment))
    return statements


def final(catalog: SourceCatalog, staging: str) -> list[sql.Composable]:
    """Foreign keys and NOT VALID checks (all tables loaded), views, then owners and grants of everything."""
    statements: list[sql.Composable] = []
    for table in catalog.tables:
        qualified = sql.Identifier(staging, table.name)
        for constraint in table.constraints:
            if constraint.kind == "f" or (constraint.kind == "c" and not constraint.validated):
                statements.append(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                        qualified, sql.Identifier(constraint.name), sql.SQL(constraint.definition)
                    )
                )
                target = sql.SQL("{} ON {}").format(sql.Identifier(constraint.name), qualified)
                statements.extend(_comment("CONSTRAINT", target, constraint.comment))
    for view in view_order(catalog.views):
        options = (
            sql.SQL(" WITH ({})").format(sql.SQL(", ").join(sql.SQL(o) for o in view.options))
            if view.options
            else sql.SQL("")
        )
        statements.append(
            sql.SQL("CREATE VIEW {}{} AS {}").format(
                sql.Identifier(staging, view.name), options, sql.SQL(view.definition)
            )
        )
        statements.extend(_comment("VIEW", sql.Identifier(staging, view.name), view.comment))
        for column, text in view.column_comments.items():
            statements.extend(_comment("COLUMN", sql.Identifier(staging, view.name, column), text))
    statements.extend(ownership(catalog, staging))
    return statements


def ownership(catalog: SourceCatalog, staging: str) -> list[sql.Composable]:
    """Owners first (ALTER TABLE also moves owned sequences and indexes), then the exact ACLs."""
    statements: list[sql.Composable] = []
    owner_of = sql.SQL("ALTER {} {} OWNER TO {}")
    for typ in catalog.types:
        kind = "DOMAIN" if typ.kind == "domain" else "TYPE"
        statements.append(owner_of.format(sql.SQL(kind), sql.Identifier(staging, typ.name), sql.Identifier(typ.owner)))
    for table in catalog.tables:
        statements.append(
            owner_of.format(sql.SQL("TABLE"), sql.Identifier(staging, table.name), sql.Identifier(table.owner))
        )
    for seq in catalog.sequences:
        if not seq.owned_by:
            statements.append(
                owner_of.format(sql.SQL("SEQUENCE"), sql.Identifier(staging, seq.name), sql.Identifier(seq.owner))
            )
    for view in catalog.views:
        statements.append(
            owner_of.format(sql.SQL("VIEW"), sql.Identifier(staging, view.name), sql.Identifier(view.owner))
        )
    for typ in catalog.types:
        statements.extend(grant_statements("TYPE", sql.Identifier(staging, typ.name), typ.owner, typ.acl))
    for table in catalog.tables:
        target = sql.Identifier(staging, table.name)
        statements.extend(grant_statements("TABLE", target, table.owner, table.acl))
        for column in table.columns:
            if column.acl:
                statements.extend(_grants("TABLE", target, column.acl, column.name))
    for seq in catalog.sequences:
        statements.extend(grant_statements("SEQUENCE", sql.Identifier(staging, seq.name), seq.owner, seq.acl))
    for view in catalog.views:
        statements.extend(grant_statements("TABLE", sql.Identifier(staging, view.name), view.owner, view.acl))
    return statements


def sequence_values(catalog: SourceCatalog, staging: str) -> list[sql.Composable]:
    return [
        sql.SQL("SELECT pg_catalog.setval(pg_catalog.format('%I.%I', {}, {})::regclass, {}, {})").format(
            sql.Literal(staging), sql.Literal(seq.name), sql.Literal(seq.last_value), sql.Literal(seq.is_called)
        )
        for seq in catalog.sequences
        if seq.last_value is not None
    ]


def objects_to_create(catalog: SourceCatalog) -> list[str]:
    """A readable list of what the copy creates, for check mode."""
    objects = [f"{t.kind} {t.name}" for t in catalog.types]
    objects += [f"sequence {s.name}" for s in catalog.sequences]
    for table in catalog.tables:
        objects.append(f"table {table.name}")
        kinds = {"p": "primary key", "u": "unique constraint", "c": "check constraint", "f": "foreign key"}
        objects += [f"{kinds.get(c.kind, 'exclusion constraint')} {c.name} on {table.name}" for c in table.constraints]
        objects += [f"index {i.name} on {table.name}" for i in table.indexes]
    objects += [f"view {v.name}" for v in catalog.views]
    return objects
