"""Catalog-level descriptions of a schema, to prove a copy is faithful (test code, independent of the plugins).

* ``describe_schema(conn, schema)``: every object of a schema as plain data, with the schema's own name
  replaced by a placeholder, so that ``describe_schema(ca_conn, "public") == describe_schema(lamassu_conn, "ca")``
  after a faithful copy. Never an OID: both databases live on one server.
* ``diff_descriptions(a, b)``: the differences as readable lines, for assertion messages.
* ``compare_schemas(source_conn, source_schema, target_conn, target_schema)``: both of the above and the
  data checksums in one call: ``assert compare_schemas(...) == []``.
* ``data_checksums(conn, schema)``: per table, the row count and an order-independent checksum of the content,
  computed by the server.
* ``catalog_snapshot(conn)``: everything of a database (and the cluster-wide database and role rows) that a
  refused, failed or check-mode run must leave alone.

How names are made comparable: the descriptions are read with ``search_path`` set to the described schema
followed by the schemas that hold extensions, so PostgreSQL prints references to the schema's own objects and
to extension objects (``citext``, ``gen_random_uuid``) without a qualifier, wherever the target database keeps
its extensions. Where PostgreSQL qualifies anyway (``pg_get_indexdef`` always names ``schema.table``), the
schema name used as a qualifier is replaced by ``SCHEMA_PLACEHOLDER``; references to any other schema keep
their name and so show up as differences. Objects that belong to an extension, and objects PostgreSQL creates
implicitly (array types, row types, multirange types, range constructors), are left out.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from psycopg2 import extensions, sql

SCHEMA_PLACEHOLDER = "<schema>"

# Session settings that change how values are printed; fixed while reading so that two sessions agree.
READ_SETTINGS = {
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "1",
    "bytea_output": "hex",
}

SYSTEM_SCHEMAS_SQL = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
    " AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'"
)

_BARE_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]*")


def normalize_schema(text: str | None, schema: str) -> str | None:
    """Replace ``schema`` used as a qualifier (``schema.x``, ``"schema".x``) by the placeholder.

    Only whole identifiers followed by a dot: ``publication.x`` or ``mypublic.x`` stay as they are for ``public``.
    """
    if text is None:
        return None
    quoted = '"' + schema.replace('"', '""') + '"'
    forms = [re.escape(quoted)]
    if _BARE_IDENTIFIER.fullmatch(schema):
        forms.append(re.escape(schema))
    pattern = r'(?<![\w$".])(?:' + "|".join(forms) + r")\."
    return re.sub(pattern, SCHEMA_PLACEHOLDER + ".", text)


@contextlib.contextmanager
def _reading(conn) -> Iterator[Any]:
    """A cursor with READ_SETTINGS in effect.

    On an autocommit connection: one REPEATABLE READ, READ ONLY transaction (one snapshot), rolled back at the end.
    Otherwise: the caller's transaction, with the settings restored afterwards (after an error they stay until the
    caller's rollback, which undoes them anyway: they are set with ``is_local``).
    """
    owns_transaction = conn.autocommit
    if owns_transaction:
        conn.autocommit = False
    try:
        with conn.cursor() as cur:
            if owns_transaction:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            saved = {}
            for name, value in READ_SETTINGS.items():
                cur.execute("SELECT current_setting(%s), set_config(%s, %s, true)", (name, name, value))
                saved[name] = cur.fetchone()[0]
            saved["search_path"] = _fetch_value(cur, "SELECT current_setting('search_path')")
            yield cur
            if not owns_transaction and conn.info.transaction_status != extensions.TRANSACTION_STATUS_INERROR:
                for name, value in saved.items():
                    cur.execute("SELECT set_config(%s, %s, true)", (name, value))
    finally:
        if owns_transaction:
            conn.rollback()
            conn.autocommit = True


def _fetch_value(cur, query, params=None):
    cur.execute(query, params)
    return cur.fetchone()[0]


def _rows(cur, query: str, params=None) -> list[dict]:
    cur.execute(query, params)
    names = [column.name for column in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _set_search_path(cur, schema: str) -> None:
    """The described schema first, then every schema holding an extension (see the module docstring)."""
    cur.execute(
        """
        SELECT string_agg(quote_ident(name), ', ' ORDER BY position, name)
        FROM (
            SELECT %s::text AS name, 0 AS position
            UNION
            SELECT DISTINCT n.nspname, 1 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
            WHERE n.nspname NOT IN (%s, 'pg_catalog')
        ) AS s
        """,
        (schema, schema),
    )
    cur.execute("SELECT set_config('search_path', %s, true)", (cur.fetchone()[0],))


def _not_implicit(catalog: str, alias: str, deptypes: str = "'e', 'i'") -> str:
    """SQL condition: the object is neither an extension member nor created implicitly with another object.

    (A partitioned table depends internally on its own key columns: such self-references do not count.)
    """
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = '{catalog}'::regclass"
        f" AND dep.objid = {alias}.oid AND dep.deptype IN ({deptypes})"
        " AND NOT (dep.refclassid = dep.classid AND dep.refobjid = dep.objid))"
    )


def _not_extension_member(catalog: str, alias: str) -> str:
    return _not_implicit(catalog, alias, "'e'")


def _acl(column: str, kind: str, owner: str) -> str:
    """Sorted aclitem texts; NULL (default privileges) is spelled out so that explicit defaults compare equal."""
    return f"ARRAY(SELECT a::text FROM unnest(coalesce({column}, acldefault({kind}, {owner}))) a ORDER BY 1)"


RELATIONS_SQL = f"""
SELECT c.relname AS name, c.relkind AS kind, c.relpersistence AS persistence,
       pg_get_userbyid(c.relowner) AS owner,
       {_acl("c.relacl", "'r'", "c.relowner")} AS acl,
       obj_description(c.oid, 'pg_class') AS comment,
       ARRAY(SELECT o FROM unnest(c.reloptions) o ORDER BY 1) AS reloptions,
       am.amname AS access_method, ts.spcname AS tablespace,
       c.relrowsecurity AS row_security, c.relforcerowsecurity AS force_row_security,
       c.relreplident AS replica_identity,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS partition_bound,
       ARRAY(SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid ORDER BY i.inhseqno)
           AS inherits,
       CASE WHEN c.reloftype <> 0 THEN c.reloftype::regtype::text END AS of_type,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition,
       fs.srvname AS foreign_server,
       ARRAY(SELECT o FROM unnest(ft.ftoptions) o ORDER BY 1) AS foreign_options
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_am am ON am.oid = c.relam
LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
LEFT JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
LEFT JOIN pg_foreign_server fs ON fs.oid = ft.ftserver
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {_not_extension_member("pg_class", "c")}
ORDER BY 1
"""

COLUMNS_SQL = f"""
SELECT c.relname AS relation, a.attname AS name,
       row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS position,
       format_type(a.atttypid, a.atttypmod) AS type,
       CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END AS collation,
       a.attnotnull AS not_null,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END AS default,
       a.attidentity AS identity,
       a.attgenerated AS generated,
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END AS generated_expression,
       col_description(a.attrelid, a.attnum) AS comment,
       ARRAY(SELECT x::text FROM unnest(a.attacl) x ORDER BY 1) AS acl,
       a.attinhcount > 0 AS inherited,
       ARRAY(SELECT o FROM unnest(a.attoptions) o ORDER BY 1) AS options
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'f', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
  AND {_not_extension_member("pg_class", "c")}
ORDER BY 1, 3
"""

CONSTRAINTS_SQL = """
SELECT c.relname AS relation, con.conname AS name, con.contype AS type,
       pg_get_constraintdef(con.oid) AS definition,
       con.condeferrable AS deferrable, con.condeferred AS deferred, con.convalidated AS validated,
       con.conislocal AS local, con.connoinherit AS no_inherit,
       CASE WHEN con.contype IN ('p', 'u', 'x') THEN ix.relname END AS index,
       obj_description(con.oid, 'pg_constraint') AS comment
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class ix ON ix.oid = con.conindid
WHERE n.nspname = %s
ORDER BY 1, 2
"""

INDEXES_SQL = """
SELECT t.relname AS relation, i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition,
       x.indisunique AS is_unique, x.indisprimary AS is_primary, x.indisexclusion AS is_exclusion,
       x.indimmediate AS immediate, x.indisclustered AS clustered, x.indisvalid AS valid,
       x.indisreplident AS replica_identity,
       (SELECT con.conname FROM pg_constraint con
        WHERE con.conindid = x.indexrelid AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u', 'x'))
           AS constraint,
       obj_description(i.oid, 'pg_class') AS comment,
       ARRAY(SELECT o FROM unnest(i.reloptions) o ORDER BY 1) AS reloptions,
       ts.spcname AS tablespace
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_tablespace ts ON ts.oid = i.reltablespace
WHERE n.nspname = %s
ORDER BY 1, 2
"""

SEQUENCES_SQL = f"""
SELECT c.relname AS name, pg_get_userbyid(c.relowner) AS owner,
       {_acl("c.relacl", "'s'", "c.relowner")} AS acl,
       obj_description(c.oid, 'pg_class') AS comment, c.relpersistence AS persistence,
       format_type(s.seqtypid, NULL) AS type, s.seqstart AS start, s.seqincrement AS increment,
       s.seqmin AS min, s.seqmax AS max, s.seqcache AS cache, s.seqcycle AS cycle,
       (SELECT d.refobjid::regclass::text || '.' || quote_ident(a.attname)
        FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
          AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')) AS owned_by,
       EXISTS (SELECT 1 FROM pg_depend d
               WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i') AS identity
FROM pg_class c
JOIN pg_sequence s ON s.seqrelid = c.oid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind = 'S'
  AND {_not_extension_member("pg_class", "c")}
ORDER BY 1
"""

TYPES_SQL = f"""
SELECT t.typname AS name, t.typtype AS kind, pg_get_userbyid(t.typowner) AS owner,
       {_acl("t.typacl", "'T'", "t.typowner")} AS acl,
       obj_description(t.oid, 'pg_type') AS comment,
       CASE WHEN t.typtype = 'e' THEN
           ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
       END AS labels,
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END AS base_type,
       t.typnotnull AS not_null,
       pg_get_expr(t.typdefaultbin, 0) AS default,
       CASE WHEN t.typcollation <> 0 THEN t.typcollation::regcollation::text END AS collation,
       CASE WHEN t.typtype = 'd' THEN ARRAY(
           SELECT con.conname || ': ' || pg_get_constraintdef(con.oid)
                  || CASE WHEN con.convalidated THEN '' ELSE ' (not validated)' END
           FROM pg_constraint con WHERE con.contypid = t.oid ORDER BY con.conname)
       END AS constraints,
       CASE WHEN t.typtype = 'c' THEN ARRAY(
           SELECT quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
                  || CASE WHEN a.attcollation <> 0 AND a.attcollation <> at.typcollation
                          THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END
           FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid
           WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
       END AS attributes,
       format_type(r.rngsubtype, NULL) AS range_subtype,
       CASE WHEN r.rngcollation <> 0 THEN r.rngcollation::regcollation::text END AS range_collation,
       opc.opcname AS range_opclass,
       r.rngcanonical::text AS range_canonical, r.rngsubdiff::text AS range_subdiff
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_range r ON r.rngtypid = t.oid
LEFT JOIN pg_opclass opc ON opc.oid = r.rngsubopc
WHERE n.nspname = %s AND {_not_implicit("pg_type", "t")}
ORDER BY 1
"""

TRIGGERS_SQL = """
SELECT c.relname AS relation, tg.tgname AS name, pg_get_triggerdef(tg.oid) AS definition, tg.tgenabled AS enabled,
       obj_description(tg.oid, 'pg_trigger') AS comment
FROM pg_trigger tg
JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND NOT tg.tgisinternal
ORDER BY 1, 2
"""

POLICIES_SQL = """
SELECT c.relname AS relation, p.polname AS name, p.polcmd AS command, p.polpermissive AS permissive,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END FROM unnest(p.polroles) r ORDER BY 1)
           AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS using, pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
FROM pg_policy p
JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s
ORDER BY 1, 2
"""

RULES_SQL = """
SELECT c.relname AS relation, r.rulename AS name, pg_get_ruledef(r.oid) AS definition, r.ev_enabled AS enabled
FROM pg_rewrite r
JOIN pg_class c ON c.oid = r.ev_class
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND r.rulename <> '_RETURN'
ORDER BY 1, 2
"""

FUNCTIONS_SQL = f"""
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS signature,
       p.prokind AS kind, pg_get_function_result(p.oid) AS result, l.lanname AS language,
       pg_get_userbyid(p.proowner) AS owner, {_acl("p.proacl", "'f'", "p.proowner")} AS acl,
       md5(p.prosrc) AS source_md5
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = %s AND {_not_implicit("pg_proc", "p")}
ORDER BY 1
"""

# Other schema-qualified object kinds: listed by name only, so that a comparison exposes them.
OTHER_OBJECTS = (
    ("statistics", "pg_statistic_ext", "stxname", "stxnamespace"),
    ("collation", "pg_collation", "collname", "collnamespace"),
    ("operator", "pg_operator", "oprname", "oprnamespace"),
    ("operator class", "pg_opclass", "opcname", "opcnamespace"),
    ("operator family", "pg_opfamily", "opfname", "opfnamespace"),
    ("conversion", "pg_conversion", "conname", "connamespace"),
    ("text search configuration", "pg_ts_config", "cfgname", "cfgnamespace"),
    ("text search dictionary", "pg_ts_dict", "dictname", "dictnamespace"),
    ("text search parser", "pg_ts_parser", "prsname", "prsnamespace"),
    ("text search template", "pg_ts_template", "tmplname", "tmplnamespace"),
)

# Fields holding SQL text or type names, where the schema qualifier is normalized.
_SQL_TEXT_FIELDS = frozenset(
    {
        "type",
        "collation",
        "default",
        "generated_expression",
        "definition",
        "partition_key",
        "partition_bound",
        "inherits",
        "of_type",
        "owned_by",
        "base_type",
        "constraints",
        "attributes",
        "range_subtype",
        "range_collation",
        "range_canonical",
        "range_subdiff",
        "using",
        "with_check",
        "result",
    }
)


def _normalized(row: dict, schema: str, drop: tuple[str, ...] = ()) -> dict:
    out = {}
    for key, value in row.items():
        if key in drop:
            continue
        if key in _SQL_TEXT_FIELDS:
            if isinstance(value, list):
                value = [normalize_schema(v, schema) for v in value]
            elif isinstance(value, str):
                value = normalize_schema(value, schema)
        out[key] = value
    return out


def _other_objects_sql() -> sql.Composed:
    parts = [
        sql.SQL(
            "SELECT {label} || ' ' || o.{name}::text FROM {catalog} o JOIN pg_namespace n ON n.oid = o.{namespace}"
            " WHERE n.nspname = %(schema)s AND NOT EXISTS (SELECT 1 FROM pg_depend dep"
            " WHERE dep.classid = {catalog_name}::regclass AND dep.objid = o.oid AND dep.deptype IN ('e', 'i'))"
        ).format(
            label=sql.Literal(label),
            name=sql.Identifier(name),
            catalog=sql.Identifier(catalog),
            namespace=sql.Identifier(namespace),
            catalog_name=sql.Literal(catalog),
        )
        for label, catalog, name, namespace in OTHER_OBJECTS
    ]
    return sql.SQL(" UNION ALL ").join(parts) + sql.SQL(" ORDER BY 1")


def _describe(cur, schema: str) -> dict:
    """The description of ``schema`` read through ``cur`` (inside ``_reading``)."""
    if not _fetch_value(cur, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)):
        raise LookupError(f"schema {schema!r} does not exist in database {cur.connection.info.dbname!r}")
    _set_search_path(cur, schema)
    relations: dict[str, dict] = {}
    for row in _rows(cur, RELATIONS_SQL, (schema,)):
        relation = _normalized(row, schema, drop=("name",))
        relation.update(columns={}, constraints={}, indexes={}, triggers={}, policies={}, rules={})
        relations[row["name"]] = relation
    for query, key in (
        (COLUMNS_SQL, "columns"),
        (CONSTRAINTS_SQL, "constraints"),
        (INDEXES_SQL, "indexes"),
        (TRIGGERS_SQL, "triggers"),
        (POLICIES_SQL, "policies"),
        (RULES_SQL, "rules"),
    ):
        for row in _rows(cur, query, (schema,)):
            # An object on a relation that is not described (e.g. an extension's table) lands under "other".
            owner = relations.setdefault(row["relation"], {"kind": "undescribed"})
            owner.setdefault(key, {})[row["name"]] = _normalized(row, schema, drop=("relation", "name"))
    sequences = {}
    for row in _rows(cur, SEQUENCES_SQL, (schema,)):
        sequence = _normalized(row, schema, drop=("name",))
        cur.execute(
            sql.SQL("SELECT last_value, is_called FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(row["name"])
            )
        )
        sequence["last_value"], sequence["is_called"] = cur.fetchone()
        sequences[row["name"]] = sequence
    types = {row["name"]: _normalized(row, schema, drop=("name",)) for row in _rows(cur, TYPES_SQL, (schema,))}
    functions = {
        row["signature"]: _normalized(row, schema, drop=("signature",)) for row in _rows(cur, FUNCTIONS_SQL, (schema,))
    }
    cur.execute(_other_objects_sql(), {"schema": schema})
    other = [row[0] for row in cur.fetchall()]
    return {
        "tables": {name: rel for name, rel in relations.items() if rel["kind"] not in ("v", "m")},
        "views": {name: rel for name, rel in relations.items() if rel["kind"] in ("v", "m")},
        "sequences": sequences,
        "types": types,
        "functions": functions,
        "other": other,
    }


def describe_schema(conn, schema: str) -> dict:
    """A structural description of every object in ``schema``, equal for a schema and its faithful copy."""
    with _reading(conn) as cur:
        return _describe(cur, schema)


def compare_schemas(source_conn, source_schema: str, target_conn, target_schema: str, data: bool = True) -> list[str]:
    """Differences between a schema and its copy (structure, and with ``data`` the checksums); empty if faithful."""
    source = {"structure": describe_schema(source_conn, source_schema)}
    target = {"structure": describe_schema(target_conn, target_schema)}
    if data:
        source["data"] = data_checksums(source_conn, source_schema)
        target["data"] = data_checksums(target_conn, target_schema)
    return diff_descriptions(source, target, names=("source", "target"))


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def diff_descriptions(a: Any, b: Any, names: tuple[str, str] = ("a", "b"), path: str = "") -> list[str]:
    """Readable differences between two descriptions (or checksums, or snapshots); empty when equal."""
    where = path or "<root>"
    if isinstance(a, dict) and isinstance(b, dict):
        lines = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in b:
                lines.append(f"{sub}: only in {names[0]}: {_short(a[key])}")
            elif key not in a:
                lines.append(f"{sub}: only in {names[1]}: {_short(b[key])}")
            else:
                lines.extend(diff_descriptions(a[key], b[key], names, sub))
        return lines
    same_length_lists = isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b)
    if same_length_lists and a != b and all(isinstance(x, dict) for x in (*a, *b)):
        lines = []
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            lines.extend(diff_descriptions(x, y, names, f"{path}[{index}]"))
        return lines
    if a != b:
        return [f"{where}: {names[0]}={_short(a)} {names[1]}={_short(b)}"]
    return []


def _checksums(cur, schema: str) -> dict[str, tuple[int, str]]:
    cur.execute(
        f"""
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND {_not_extension_member("pg_class", "c")}
        ORDER BY 1
        """,
        (schema,),
    )
    result = {}
    for (table,) in cur.fetchall():
        cur.execute(
            sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h COLLATE \"C\"), ''))"
                " FROM (SELECT md5(ROW(r.*)::text) AS h FROM {}.{} AS r) AS s"
            ).format(sql.Identifier(schema), sql.Identifier(table))
        )
        rows, checksum = cur.fetchone()
        result[table] = (int(rows), checksum)
    return result


def data_checksums(conn, schema: str) -> dict[str, tuple[int, str]]:
    """Per table of ``schema``: (row count, order-independent md5 of every row's text), from one snapshot."""
    with _reading(conn) as cur:
        return _checksums(cur, schema)


DATABASES_SQL = """
SELECT d.datname AS name, pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding,
       d.datcollate AS collate, d.datctype AS ctype, d.datistemplate AS is_template,
       d.datallowconn AS allow_connections, d.datconnlimit AS connection_limit,
       ARRAY(SELECT a::text FROM unnest(coalesce(d.datacl, acldefault('d', d.datdba))) a ORDER BY 1) AS acl,
       ARRAY(SELECT coalesce(pg_get_userbyid(NULLIF(s.setrole, 0)), '*') || ': ' || array_to_string(s.setconfig, ', ')
             FROM pg_db_role_setting s WHERE s.setdatabase = d.oid ORDER BY 1) AS settings
FROM pg_database d
ORDER BY 1
"""

ROLES_SQL = """
SELECT r.rolname AS name, r.rolsuper AS superuser, r.rolinherit AS inherit, r.rolcreaterole AS createrole,
       r.rolcreatedb AS createdb, r.rolcanlogin AS login, r.rolreplication AS replication,
       r.rolbypassrls AS bypassrls, r.rolconnlimit AS connection_limit,
       ARRAY(SELECT pg_get_userbyid(m.roleid) FROM pg_auth_members m WHERE m.member = r.oid ORDER BY 1) AS member_of,
       ARRAY(SELECT array_to_string(s.setconfig, ', ') FROM pg_db_role_setting s
             WHERE s.setrole = r.oid AND s.setdatabase = 0) AS settings
FROM pg_roles r
WHERE r.rolname NOT LIKE 'pg\\_%'
ORDER BY 1
"""

SCHEMAS_SQL = f"""
SELECT n.nspname AS name, pg_get_userbyid(n.nspowner) AS owner,
       {_acl("n.nspacl", "'n'", "n.nspowner")} AS acl,
       obj_description(n.oid, 'pg_namespace') AS comment
FROM pg_namespace n
WHERE {SYSTEM_SCHEMAS_SQL}
ORDER BY 1
"""


def catalog_snapshot(conn, data: bool = True) -> dict:
    """Every non-system object of the connected database, the cluster's databases and roles, from one snapshot.

    Two snapshots compare equal with ``diff_descriptions`` when a run changed nothing. With ``data``, each
    table's rows are checksummed too (the source must not change, not even its content).
    """
    with _reading(conn) as cur:
        snapshot: dict[str, Any] = {
            "database": cur.connection.info.dbname,
            "databases": {row.pop("name"): row for row in _rows(cur, DATABASES_SQL)},
            "roles": {row.pop("name"): row for row in _rows(cur, ROLES_SQL)},
            "extensions": {
                row.pop("name"): row
                for row in _rows(
                    cur,
                    "SELECT e.extname AS name, e.extversion AS version, n.nspname AS schema"
                    " FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1",
                )
            },
            "event_triggers": {
                row.pop("name"): row
                for row in _rows(
                    cur,
                    "SELECT evtname AS name, evtevent AS event, evtenabled AS enabled, evtfoid::regproc::text AS function"
                    " FROM pg_event_trigger ORDER BY 1",
                )
            },
            "schemas": {},
        }
        for schema in _rows(cur, SCHEMAS_SQL):
            name = schema.pop("name")
            schema["objects"] = _describe(cur, name)
            if data:
                schema["data"] = _checksums(cur, name)
            snapshot["schemas"][name] = schema
        return snapshot
