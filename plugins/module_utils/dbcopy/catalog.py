# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read one schema of the source database into the plain dataclasses of ``catalog_model``.

Everything is read inside the caller's transaction (the REPEATABLE READ
snapshot of the copy) with ``search_path`` set to the source schema, the
extension schemas, then ``pg_catalog`` (``reading_path``), so that
``pg_get_expr``, ``pg_get_constraintdef``, ``pg_get_viewdef`` and
``format_type`` print objects of the source schema and of extensions
unqualified. Those texts are later executed with the same path in which the
staging schema replaces the source schema and each extension schema is that
extension's schema in the target database: they then name the target instead
of the source, wherever the target keeps its extensions. References to any
other schema stay qualified (and must exist in the target).

Whatever the copy does not reproduce is collected in ``unsupported`` (by the
query of ``unsupported.py``) so that the run fails at plan time naming it,
instead of skipping it.
"""

from __future__ import annotations

from .._pg import sql
from ..errors import InvalidInput
from ..goose.store import read_history
from ..lamassu import GOOSE_TABLE
from .catalog_model import (
    Column,
    Constraint,
    Extension,
    Index,
    Sequence,
    SourceCatalog,
    Table,
    TypeDef,
    View,
    grants_from_rows,
)
from .unsupported import UNSUPPORTED_QUERY, not_member

# A JSON array of [grantee, privilege, grantable] for an ACL column; NULL when the ACL is the default.
_ACL = """
CASE WHEN {acl} IS NULL THEN NULL ELSE
  (SELECT coalesce(json_agg(json_build_array(
          CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
          x.privilege_type, x.is_grantable) ORDER BY x.grantee, x.privilege_type), '[]'::json)
   FROM aclexplode({acl}) x) END
"""


def acl_expr(column: str) -> str:
    return _ACL.format(acl=column)


SCHEMA_QUERY = f"""
SELECT n.oid, pg_get_userbyid(n.nspowner), obj_description(n.oid, 'pg_namespace'), {acl_expr("n.nspacl")}
FROM pg_namespace n WHERE n.nspname = %s
"""

TABLES_QUERY = f"""
SELECT c.oid, c.relname, pg_get_userbyid(c.relowner), c.relpersistence = 'u', coalesce(c.reloptions, '{{}}'),
       obj_description(c.oid, 'pg_class'), {acl_expr("c.relacl")},
       greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)
FROM pg_class c WHERE c.relnamespace = %s AND c.relkind = 'r' ORDER BY c.relname
"""

COLUMNS_QUERY = f"""
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
       CASE WHEN a.attcollation <> t.typcollation THEN
         (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
          FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
       END,
       col_description(a.attrelid, a.attnum),
       {acl_expr("a.attacl")}
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = %s AND c.relkind IN ('r', 'v', 'c') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

CONSTRAINTS_QUERY = """
SELECT co.conrelid, co.conname, co.contype, pg_get_constraintdef(co.oid), co.convalidated,
       obj_description(co.oid, 'pg_constraint'),
       CASE WHEN co.contype IN ('p', 'u', 'x') THEN obj_description(co.conindid, 'pg_class') END
FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
WHERE c.relnamespace = %s AND c.relkind = 'r' AND co.contype IN ('p', 'u', 'c', 'f', 'x')
ORDER BY co.conrelid, co.contype, co.conname
"""

# Indexes that no constraint owns; their definition is cut after ``USING`` so that the table can be renamed.
INDEXES_QUERY = """
SELECT i.indrelid, ic.relname, i.indisunique, pg_get_indexdef(i.indexrelid),
       'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || quote_ident(ic.relname)
         || ' ON ' || quote_ident(n.nspname) || '.' || quote_ident(tc.relname) || ' USING ',
       obj_description(i.indexrelid, 'pg_class')
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace n ON n.oid = tc.relnamespace
WHERE tc.relnamespace = %s AND tc.relkind = 'r'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.contype IN ('p', 'u', 'x'))
ORDER BY i.indrelid, ic.relname
"""

SEQUENCES_QUERY = f"""
SELECT c.relname, pg_get_userbyid(c.relowner), format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
       s.seqmin, s.seqmax, s.seqcache, s.seqcycle, tc.relname, a.attname, d.deptype = 'i',
       obj_description(c.oid, 'pg_class'), {acl_expr("c.relacl")}
FROM pg_class c
JOIN pg_sequence s ON s.seqrelid = c.oid
LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
                     AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
LEFT JOIN pg_class tc ON tc.oid = d.refobjid
LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE c.relnamespace = %s AND c.relkind = 'S'
ORDER BY c.relname
"""

VIEWS_QUERY = f"""
SELECT c.oid, c.relname, pg_get_userbyid(c.relowner), pg_get_viewdef(c.oid), coalesce(c.reloptions, '{{}}'),
       obj_description(c.oid, 'pg_class'), {acl_expr("c.relacl")},
       ARRAY(SELECT DISTINCT dc.relname::text FROM pg_rewrite r
             JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                              AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid
             JOIN pg_class dc ON dc.oid = d.refobjid AND dc.relkind = 'v' AND dc.relnamespace = c.relnamespace
             WHERE r.ev_class = c.oid)
FROM pg_class c WHERE c.relnamespace = %s AND c.relkind = 'v' ORDER BY c.relname
"""

TYPES_QUERY = f"""
SELECT t.oid, t.typname, t.typtype, pg_get_userbyid(t.typowner), obj_description(t.oid, 'pg_type'),
       {acl_expr("t.typacl")},
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
       CASE WHEN t.typtype = 'd' AND t.typcollation <> bt.typcollation THEN
         (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
          FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation)
       END,
       pg_get_expr(t.typdefaultbin, 0), t.typnotnull, t.typrelid,
       CASE WHEN t.typtype = 'r' THEN json_build_array(
         format_type(rg.rngsubtype, NULL),
         CASE WHEN NOT oc.opcdefault THEN quote_ident(ocn.nspname) || '.' || quote_ident(oc.opcname) END,
         CASE WHEN rg.rngcollation <> 0 AND rg.rngcollation <> st.typcollation THEN
           (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
            FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = rg.rngcollation)
         END,
         CASE WHEN rg.rngcanonical <> 0 THEN rg.rngcanonical::regproc::text END,
         CASE WHEN rg.rngsubdiff <> 0 THEN rg.rngsubdiff::regproc::text END,
         (SELECT mt.typname FROM pg_type mt WHERE mt.oid = (to_jsonb(rg) ->> 'rngmultitypid')::oid)) END
FROM pg_type t
LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
LEFT JOIN pg_class rc ON rc.oid = t.typrelid
LEFT JOIN pg_range rg ON rg.rngtypid = t.oid
LEFT JOIN pg_type st ON st.oid = rg.rngsubtype
LEFT JOIN pg_opclass oc ON oc.oid = rg.rngsubopc
LEFT JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
WHERE t.typnamespace = %s AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND rc.relkind = 'c'))
  AND {not_member("pg_type", "t.oid")}
ORDER BY t.oid
"""

DOMAIN_CHECKS_QUERY = """
SELECT co.contypid, co.conname, pg_get_constraintdef(co.oid), co.convalidated, obj_description(co.oid, 'pg_constraint')
FROM pg_constraint co JOIN pg_type t ON t.oid = co.contypid
WHERE t.typnamespace = %s AND co.contype = 'c' ORDER BY co.contypid, co.conname
"""

EXTENSIONS_QUERY = """
SELECT e.extname, n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname <> 'plpgsql' ORDER BY e.extname
"""


def extension_schemas(session) -> dict[str, str]:
    """Installed extensions of the connected database: name -> schema (plpgsql left out)."""
    return {name: schema for name, schema, _version in session.fetch_all(EXTENSIONS_QUERY)}


def reading_path(schema: str, extensions: list[Extension]) -> list[str]:
    """The source schema, the schemas of the extensions (by extension name), then ``pg_catalog``.

    Definitions read with this path name objects of the source schema and of the extensions unqualified; the
    target runs them with the same path where the staging schema replaces the source schema and each extension
    schema is where that extension lives in the target database.
    """
    return list(dict.fromkeys([schema, *[e.schema for e in extensions], "pg_catalog"]))


def set_reading_path(session, schemas: list[str]) -> None:
    """Transaction-local ``search_path``."""
    text = ", ".join(sql.Identifier(s).as_string(session.conn) for s in schemas)
    session.fetch_all("SELECT set_config('search_path', %s, true)", (text,))


def read_catalog(session, database: str, schema: str) -> SourceCatalog:
    """Everything the copy needs to know about ``schema``; the caller holds the snapshot transaction."""
    row = session.fetch_one(SCHEMA_QUERY, (schema,))
    if row is None:
        raise InvalidInput(f"The source schema {schema!r} does not exist in database {database!r}")
    ns, schema_owner, schema_comment, schema_acl = row
    catalog = SourceCatalog(database, schema, schema_owner, schema_comment, grants_from_rows(schema_acl))
    catalog.extensions = [Extension(*r) for r in session.fetch_all(EXTENSIONS_QUERY)]
    set_reading_path(session, reading_path(schema, catalog.extensions))
    catalog.unsupported = [f"{kind} {name}" for kind, name in session.fetch_all(UNSUPPORTED_QUERY, {"ns": ns})]
    _read_types(session, ns, catalog)
    _read_tables(session, ns, catalog)
    _read_sequences(session, ns, catalog)
    _read_views(session, ns, catalog)
    catalog.goose_version = read_goose_version(session, catalog)
    return catalog


def _read_types(session, ns: int, catalog: SourceCatalog) -> None:
    checks: dict[int, list[Constraint]] = {}
    for typid, name, definition, validated, comment in session.fetch_all(DOMAIN_CHECKS_QUERY, (ns,)):
        checks.setdefault(typid, []).append(Constraint(name, "c", definition, validated, comment))
    attributes: dict[int, list[Column]] = {}
    for relid, column in _columns(session, ns):
        attributes.setdefault(relid, []).append(column)
    for row in session.fetch_all(TYPES_QUERY, (ns,)):
        oid, name, typtype, owner, comment, acl, labels, base, collation, default, not_null, relid, rng = row
        kind = {"e": "enum", "d": "domain", "c": "composite", "r": "range"}[typtype]
        range_options = []
        if rng:
            subtype, opclass, rcollation, canonical, subdiff, multirange = rng
            range_options.append(("SUBTYPE", subtype))
            for option, value in (
                ("SUBTYPE_OPCLASS", opclass),
                ("COLLATION", rcollation),
                ("CANONICAL", canonical),
                ("SUBTYPE_DIFF", subdiff),
            ):
                if value:
                    range_options.append((option, value))
            if multirange:
                range_options.append(("MULTIRANGE_TYPE_NAME", multirange))
        catalog.types.append(
            TypeDef(
                name=name,
                kind=kind,
                owner=owner,
                labels=list(labels),
                base=base or "",
                collation=collation,
                default=default,
                not_null=not_null,
                checks=checks.get(oid, []),
                attributes=attributes.get(relid, []) if kind == "composite" else [],
                range_options=range_options,
                comment=comment,
                acl=grants_from_rows(acl),
            )
        )


def _columns(session, ns: int):
    for relid, name, typ, typoid, not_null, default, identity, generated, collation, comment, acl in session.fetch_all(
        COLUMNS_QUERY, (ns,)
    ):
        yield (
            relid,
            Column(
                name,
                typ,
                typoid,
                not_null,
                default,
                identity,
                generated,
                collation,
                comment,
                grants_from_rows(acl) or [],
            ),
        )


def _read_tables(session, ns: int, catalog: SourceCatalog) -> None:
    tables: dict[int, Table] = {}
    for oid, name, owner, unlogged, options, comment, acl, rows, size in session.fetch_all(TABLES_QUERY, (ns,)):
        tables[oid] = Table(name, oid, owner, unlogged=unlogged, options=list(options), comment=comment)
        tables[oid].acl = grants_from_rows(acl)
        tables[oid].estimated_rows, tables[oid].bytes = rows, size
    for relid, column in _columns(session, ns):
        if relid in tables:
            tables[relid].columns.append(column)
    for relid, name, kind, definition, validated, comment, index_comment in session.fetch_all(CONSTRAINTS_QUERY, (ns,)):
        tables[relid].constraints.append(Constraint(name, kind, definition, validated, comment, index_comment))
    for relid, name, unique, definition, prefix, comment in session.fetch_all(INDEXES_QUERY, (ns,)):
        if not definition.startswith(prefix):
            catalog.unsupported.append(f"index {name} (unexpected definition {definition!r})")
            continue
        tables[relid].indexes.append(Index(name, unique, definition[len(prefix) :], comment))
    catalog.tables = list(tables.values())


def _read_sequences(session, ns: int, catalog: SourceCatalog) -> None:
    for row in session.fetch_all(SEQUENCES_QUERY, (ns,)):
        name, owner, data_type, start, increment, minimum, maximum, cache, cycle, table, column, identity = row[:12]
        catalog.sequences.append(
            Sequence(
                name,
                owner,
                data_type,
                start,
                increment,
                minimum,
                maximum,
                cache,
                cycle,
                owned_by=(table, column) if table else None,
                identity=bool(identity),
                comment=row[12],
                acl=grants_from_rows(row[13]),
            )
        )
    if catalog.sequences:
        # Sequences are not transactional: this reads their current state, never lower than in the snapshot.
        selects = [
            sql.SQL("SELECT {name}, last_value, is_called FROM {seq}").format(
                name=sql.Literal(s.name), seq=sql.Identifier(catalog.schema, s.name)
            )
            for s in catalog.sequences
        ]
        values = {
            name: (last, called) for name, last, called in session.fetch_all(sql.SQL(" UNION ALL ").join(selects))
        }
        for seq in catalog.sequences:
            seq.last_value, seq.is_called = values[seq.name]


def _read_views(session, ns: int, catalog: SourceCatalog) -> None:
    comments: dict[int, dict[str, str]] = {}
    for relid, column in _columns(session, ns):
        if column.comment is not None:
            comments.setdefault(relid, {})[column.name] = column.comment
    for oid, name, owner, definition, options, comment, acl, depends in session.fetch_all(VIEWS_QUERY, (ns,)):
        catalog.views.append(
            View(
                name,
                oid,
                owner,
                definition.strip().rstrip(";"),
                list(options),
                comment,
                comments.get(oid, {}),
                grants_from_rows(acl),
                list(depends),
            )
        )


def read_goose_version(session, catalog: SourceCatalog) -> int | None:
    """goose's current version of the source schema (as the migrate module reads it); None without a goose table."""
    if not any(t.name == GOOSE_TABLE for t in catalog.tables):
        return None
    history = read_history(session, catalog.schema, GOOSE_TABLE)
    return None if history is None else history.current_version
