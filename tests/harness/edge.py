"""Databases that exercise the copy: every supported object kind and data type, and each unsupported kind.

* ``build_edge_database(cluster, dbname)``: a ``public`` schema with every object kind and data type the copy
  must reproduce (see ``EDGE_SCHEMA_SQL`` and ``EDGE_DATA_SQL``), owned by a non-superuser role, with grants
  to two other roles and data that stresses text, binary and special values.
* ``build_unsupported_database(cluster, dbname, kind)``: a small database whose ``public`` schema holds one
  object of a kind the copy refuses (``UNSUPPORTED_KINDS``); returns the name the refusal must mention.

Test code: the objects are written out plainly, qualified with ``public.`` where a real schema would be, so that
a copy must rewrite expressions that name the source schema.
"""

from __future__ import annotations

import contextlib

import psycopg2
from psycopg2 import errors as pg_errors
from psycopg2 import sql

from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.store import GOOSE_POSTGRES_DDL
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import GOOSE_TABLE

READER_ROLE = "edge_reader"
WRITER_ROLE = "edge_writer"

# Contrib extensions whose objects the edge schema uses (a column type, an EXCLUDE constraint's operator class).
EDGE_EXTENSIONS = ("citext", "btree_gist")

# Names of the edge schema's objects, for tests that look for them.
EDGE_TABLES = (
    "all_types",
    "big_values",
    "parents",
    "children",
    "tree_nodes",
    "reservations",
    "documents",
    "Mixed Case Table",
    "empty_table",
    "dropped_columns",
    "audit_log",
    GOOSE_TABLE,
)
EDGE_VIEWS = ("parent_summary", "parent_summary_busy")
EDGE_TYPES = ("mood", "positive_int", "short_code", "address", "float_range")

# Sizes of the two large values in big_values (row 1).
BIG_TEXT_CHUNKS = 300_000  # 37 bytes each (md5 hex, newline, a 4-byte emoji): about 11 MB
BIG_BYTEA_CHUNKS = 70_000  # 16 bytes each: about 1.1 MB

EDGE_SCHEMA_SQL = """
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy', 'it''s "complicated"');
COMMENT ON TYPE public.mood IS 'an enum, one label with quotes';
CREATE DOMAIN public.positive_int AS integer DEFAULT 1 CONSTRAINT positive_int_check CHECK (VALUE > 0);
CREATE DOMAIN public.short_code AS varchar(12) COLLATE "C" NOT NULL
    CONSTRAINT short_code_format CHECK (VALUE ~ '^[A-Z0-9-]+$');
CREATE TYPE public.address AS (street text, number integer, tags text[]);
CREATE TYPE public.float_range AS RANGE (subtype = float8, subtype_diff = float8mi);

CREATE SEQUENCE public.ticket_seq AS integer START WITH 500 INCREMENT BY 3 MINVALUE 100 MAXVALUE 100000 CYCLE;
COMMENT ON SEQUENCE public.ticket_seq IS 'standalone sequence used by a default';
CREATE SEQUENCE public.unused_seq START WITH 42 CACHE 5;

CREATE TABLE public.all_types (
    id bigint GENERATED ALWAYS AS IDENTITY (START WITH 1000 INCREMENT BY 7) PRIMARY KEY,
    label text NOT NULL,
    t text,
    vc varchar(40),
    ch char(5),
    num numeric,
    num_ps numeric(12, 4),
    i2 smallint,
    i4 integer,
    i8 bigint,
    f4 real,
    f8 double precision,
    flag boolean,
    bin bytea,
    js json,
    jsb jsonb,
    uid uuid,
    d date,
    tm time(3),
    tmtz timetz,
    ts timestamp(6),
    tstz timestamptz,
    iv interval,
    iv_ym interval year to month,
    ip inet,
    net cidr,
    mac macaddr,
    mac8 macaddr8,
    ints integer[],
    texts text[],
    matrix integer[][],
    feeling public.mood,
    amount public.positive_int,
    code public.short_code DEFAULT 'X-0',
    addr public.address,
    span public.float_range,
    ir int4range,
    tsr tstzrange,
    doc tsvector,
    bits bit(8),
    vbits varbit(16),
    x xml,
    cash money,
    ci citext,
    pt point,
    CONSTRAINT all_types_label_key UNIQUE (label)
);
COMMENT ON TABLE public.all_types IS 'one column per data type; one row per kind of special value';
COMMENT ON COLUMN public.all_types.t IS 'text with quotes, backslashes, tabs, newlines, \\N, emoji and RTL';

CREATE TABLE public.big_values (
    id integer PRIMARY KEY,
    big_text text,
    big_bytea bytea
);

CREATE TABLE public.parents (
    id serial PRIMARY KEY,
    code varchar(20) NOT NULL,
    name text COLLATE "C" NOT NULL,
    uid uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    settings jsonb NOT NULL DEFAULT '[]'::jsonb,
    ticket integer DEFAULT nextval('public.ticket_seq'::regclass),
    feeling public.mood DEFAULT 'ok'::public.mood,
    CONSTRAINT parents_code_key UNIQUE (code),
    CONSTRAINT parents_name_check CHECK (char_length(name) > 0),
    CONSTRAINT parents_feeling_check CHECK (feeling <> 'sad'::public.mood)
);
COMMENT ON TABLE public.parents IS 'serial key, defaults, checks naming the schema';
COMMENT ON COLUMN public.parents.uid IS 'default gen_random_uuid()';
COMMENT ON CONSTRAINT parents_code_key ON public.parents IS 'referenced by children.parent_code';

CREATE TABLE public.children (
    id integer GENERATED BY DEFAULT AS IDENTITY (START WITH 5 INCREMENT BY 10) PRIMARY KEY,
    parent_id integer NOT NULL REFERENCES public.parents (id) ON DELETE CASCADE ON UPDATE CASCADE,
    parent_code varchar(20) REFERENCES public.parents (code) ON DELETE SET NULL ON UPDATE RESTRICT,
    slot integer NOT NULL,
    "position" integer NOT NULL,
    CONSTRAINT children_parent_slot_key UNIQUE (parent_id, slot),
    CONSTRAINT children_position_key UNIQUE (parent_id, "position") DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT children_slot_check CHECK (slot BETWEEN 0 AND 99)
);

CREATE TABLE public.tree_nodes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE,
    parent_id uuid REFERENCES public.tree_nodes (id) ON DELETE CASCADE,
    criteria jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
CREATE INDEX tree_nodes_parent_id_idx ON public.tree_nodes (parent_id);

CREATE TABLE public.reservations (
    id bigserial PRIMARY KEY,
    room integer NOT NULL,
    during tstzrange NOT NULL,
    guest citext,
    CONSTRAINT reservations_no_overlap EXCLUDE USING gist (room WITH =, during WITH &&)
);
COMMENT ON INDEX public.reservations_no_overlap IS 'index of an EXCLUDE constraint (btree_gist)';

CREATE TABLE public.documents (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title text NOT NULL,
    slug text,
    body jsonb NOT NULL DEFAULT '{}'::jsonb,
    score double precision,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted boolean NOT NULL DEFAULT false,
    price numeric(10, 2) NOT NULL DEFAULT 0,
    quantity integer NOT NULL DEFAULT 1,
    total numeric GENERATED ALWAYS AS (price * quantity) STORED
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05);
CREATE UNIQUE INDEX documents_slug_key ON public.documents (slug) WHERE NOT deleted;
CREATE INDEX documents_lower_title_idx ON public.documents (lower(title));
CREATE INDEX documents_created_desc_idx ON public.documents (created_at DESC NULLS LAST, score NULLS FIRST);
CREATE INDEX documents_title_pattern_idx ON public.documents (title text_pattern_ops);
CREATE INDEX documents_body_gin_idx ON public.documents USING gin (body jsonb_path_ops);
CREATE INDEX documents_slug_hash_idx ON public.documents USING hash (slug);
CREATE INDEX documents_created_brin_idx ON public.documents USING brin (created_at) WITH (pages_per_range = 16);
CREATE INDEX documents_title_include_idx ON public.documents (title) INCLUDE (score);
COMMENT ON INDEX public.documents_body_gin_idx IS 'gin on jsonb with a non-default operator class';

CREATE TABLE public."Mixed Case Table" (
    "Id" integer PRIMARY KEY,
    "select" text,
    "user" text DEFAULT CURRENT_USER,
    "Order" integer,
    "column with spaces" text,
    "ünïcödé" text
);
CREATE INDEX "Mixed Case Index" ON public."Mixed Case Table" ("Order" DESC);
COMMENT ON COLUMN public."Mixed Case Table"."select" IS 'a reserved word as column name';

CREATE TABLE public.empty_table (
    id integer PRIMARY KEY,
    note text DEFAULT '',
    parent_id integer REFERENCES public.parents (id)
);

CREATE TABLE public.dropped_columns (
    id integer PRIMARY KEY,
    keep_a text,
    drop_me text,
    keep_b integer,
    drop_me_too jsonb
);

CREATE TABLE public.audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    event text NOT NULL
);

CREATE VIEW public.parent_summary AS
    SELECT p.id, p.code, p.name, count(c.id) AS children
    FROM public.parents p LEFT JOIN public.children c ON c.parent_id = p.id
    GROUP BY p.id, p.code, p.name;
COMMENT ON VIEW public.parent_summary IS 'a view on tables';
CREATE VIEW public.parent_summary_busy WITH (security_barrier) AS
    SELECT s.id, s.code, s.children FROM public.parent_summary s WHERE s.children > 1;

GRANT SELECT ON ALL TABLES IN SCHEMA public TO edge_reader;
GRANT SELECT, INSERT, UPDATE ON public.parents, public.children TO edge_writer;
GRANT SELECT ON public.all_types TO edge_writer WITH GRANT OPTION;
GRANT UPDATE (name, settings) ON public.parents TO edge_reader;
GRANT USAGE, SELECT ON SEQUENCE public.ticket_seq TO edge_writer;
GRANT USAGE ON TYPE public.mood TO edge_reader;
"""

# Row 'specials' holds the hard values, 'min'/'max' the range ends, 'nulls' NULL everywhere possible,
# 'empty' the empty value of each type, 'nan' NaN in the numeric and float columns. {xml} is an XML literal,
# or NULL on servers built without libxml; the {placeholders} are replaced as plain text (the SQL is full of
# braces, so no str.format).
EDGE_DATA_SQL = r"""
INSERT INTO public.all_types (label, t, vc, ch, num, num_ps, i2, i4, i8, f4, f8, flag, bin, js, jsb, uid,
    d, tm, tmtz, ts, tstz, iv, iv_ym, ip, net, mac, mac8, ints, texts, matrix, feeling, amount, code, addr,
    span, ir, tsr, doc, bits, vbits, x, cash, ci, pt)
VALUES
('specials',
 E'quote \' dq " backslash \\ tab \t newline \n cr \r copy-null \\N pipe | end',
 'héllo wörld ✓ 😀 مرحبا עברית ' || E'\u200F', 'ab',
 '123456789012345678901234567890.123456789012345678901234567890', 12345678.1234,
 0, 0, 0, '-0', '-0', true, '\x00ff00deadbeef00'::bytea,
 '{"dup": 1, "dup": 2, "nested": {"a": [1, 2.50, null, true]}, "u": "\u00e9\ud83d\ude00", "nul": "\u0000"}',
 '{"b": {"c": [1, "x\"y", null]}, "emoji": "😀", "esc": "\u00e9", "num": 1.50, "rtl": "שלום"}',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
 '2024-02-29', '23:59:59.999', '23:59:59+14', '2024-02-29 23:59:59.999999', '2024-02-29 23:59:59.999999+05:30',
 '1 mon -2 days 03:04:05.678901', '1 year 2 months',
 '2001:db8::1/64', '2001:db8::/32', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
 '{1,NULL,3}', '{"a \"quoted\"",NULL,"NULL","","back\\slash","comma,here","{brace}","😀"}',
 '{{1,2},{3,4}}', 'it''s "complicated"', 7, 'ABC-123', ROW('Main St "A"', 42, '{a,NULL}')::public.address,
 '[1.5,2.5)', '[1,10)', '[2024-01-01 00:00:00+00,infinity)', 'a:1A fat:2B,4C cat:5D', B'10101010', B'1',
 {xml}, 12345.67, 'MiXeD CaSe', '(1.5,-2)'),
('min',
 'NULL', '\N', '     ', -(repeat('9', 1000)::numeric), -99999999.9999,
 -32768, -2147483648, -9223372036854775808, '-Infinity', '-Infinity', false, '\x00'::bytea,
 '[]', '[]', '00000000-0000-0000-0000-000000000000',
 '4713-01-01 BC', '00:00:00', '00:00:00-15:59', '4713-01-01 00:00:00 BC', '-infinity',
 '-178000000 years', '-178000000 years',
 '0.0.0.0/0', '0.0.0.0/0', '00:00:00:00:00:00', '00:00:00:00:00:00:00:00',
 '[0:1]={7,8}', '{NULL}', '{{NULL,NULL}}', 'sad', 1, '0', NULL,
 '(,)', 'empty', '(,)', '', B'00000000', B'', NULL, -0.01, '', '(0,0)'),
('max',
 repeat('x', 10000), repeat('y', 40), 'zzzzz', repeat('9', 1000)::numeric, 99999999.9999,
 32767, 2147483647, 9223372036854775807, 'Infinity', 1.7976931348623157e308, true, '\xffffffff'::bytea,
 '{"deep": [[[[[[[[[[1]]]]]]]]]]}', '{"deep": [[[[[[[[[[1]]]]]]]]]]}', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
 '5874897-12-31', '24:00:00', '24:00:00+15:59', '294276-12-31 23:59:59.999999', 'infinity',
 '178000000 years', '178000000 years',
 '255.255.255.255', '255.255.255.255/32', 'ff:ff:ff:ff:ff:ff', 'ff:ff:ff:ff:ff:ff:ff:ff',
 '{2147483647}', '{"\\"}', '{{1},{2},{3}}', 'happy', 2147483647, 'ZZZZZZZZZZZZ', ROW(NULL, NULL, NULL),
 '(-Infinity,Infinity)', '[-2147483648,2147483647)', '(-infinity,infinity)', 'a:16383', B'11111111',
 B'1111111111111111', NULL, 92233720368547758.07, repeat('Ω', 100), '(1e308,-1e308)'),
('nulls',
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'N', NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
('empty',
 '', '', '', 0, 0, 1, 1, 1, 5e-45, 5e-324, false, ''::bytea, '{}', '{}', gen_random_uuid(),
 '2000-01-01', '12:00', '12:00+00', '2000-01-01 00:00', '2000-01-01 00:00+00', '0', '0',
 '::', '::/0', '01:02:03:04:05:06', '01:02:03:04:05:06:07:08', '{}', '{}', '{}', 'ok', 1, 'E', ROW('', 0, '{}'),
 'empty', '[0,0]', 'empty', '', B'00000001', B'0', {empty_xml}, 0, '', '(0,0)');

INSERT INTO public.all_types (label, num, num_ps, f4, f8, code) VALUES ('nan', 'NaN', 'NaN', 'NaN', 'NaN', 'NAN');

INSERT INTO public.big_values (id, big_text, big_bytea)
SELECT 1,
       (SELECT string_agg(md5(i::text) || chr(10) || '😀', '' ORDER BY i) FROM generate_series(1, {text_chunks}) i),
       (SELECT decode(string_agg(md5(i::text), '' ORDER BY i), 'hex') || '\x000000'::bytea
        FROM generate_series(1, {bytea_chunks}) i);
INSERT INTO public.big_values (id, big_text, big_bytea) VALUES (2, '', ''::bytea), (3, NULL, NULL);

INSERT INTO public.parents (code, name, settings, feeling) VALUES
    ('P-1', 'first parent', '[{"k": "v"}]', 'happy'),
    ('P-2', 'second parent', DEFAULT, DEFAULT),
    ('P-3', 'no children', '[]', NULL);
INSERT INTO public.children (parent_id, parent_code, slot, "position") VALUES
    (1, 'P-1', 0, 1), (1, 'P-1', 1, 2), (1, NULL, 2, 3), (2, 'P-2', 0, 1);
ALTER TABLE public.children ALTER COLUMN id RESTART WITH 1000;
SELECT setval('public.ticket_seq', 1234, true);

INSERT INTO public.tree_nodes (id, name, parent_id, criteria) VALUES
    ('11111111-1111-1111-1111-111111111111', 'root', NULL, '[]'),
    ('22222222-2222-2222-2222-222222222222', 'child', '11111111-1111-1111-1111-111111111111',
     '[{"field": "tags", "op": "contains", "value": "prod"}]'),
    ('33333333-3333-3333-3333-333333333333', 'grandchild', '22222222-2222-2222-2222-222222222222', '[]');

INSERT INTO public.reservations (room, during, guest) VALUES
    (1, '[2024-01-01 10:00+00,2024-01-01 11:00+00)', 'Alice'),
    (1, '[2024-01-01 11:00+00,2024-01-01 12:00+00)', 'BOB'),
    (2, '[2024-01-01 10:00+00,2024-01-01 12:00+00)', NULL);

INSERT INTO public.documents (title, slug, body, score, deleted, price, quantity) VALUES
    ('First', 'first', '{"tags": ["a", "b"], "n": 1}', 0.5, false, 9.99, 3),
    ('Second', 'second', '{}', NULL, false, 0, 1),
    ('Deleted twin', 'first', '{"deleted": true}', -1e-10, true, 1.01, 100);

INSERT INTO public."Mixed Case Table" ("Id", "select", "user", "Order", "column with spaces", "ünïcödé") VALUES
    (1, 'select', 'someone', 3, 'has spaces', 'ü'),
    (2, NULL, DEFAULT, NULL, '', '');

INSERT INTO public.dropped_columns (id, keep_a, drop_me, keep_b, drop_me_too) VALUES
    (1, 'a1', 'gone', 10, '{"gone": true}'), (2, 'a2', NULL, NULL, NULL);
ALTER TABLE public.dropped_columns DROP COLUMN drop_me, DROP COLUMN drop_me_too;
ALTER TABLE public.dropped_columns ADD COLUMN added_later text DEFAULT 'later';
INSERT INTO public.dropped_columns (id, keep_a, keep_b, added_later) VALUES (3, 'a3', 30, NULL);

INSERT INTO public.audit_log (at, event) VALUES
    ('2024-01-01 00:00+00', 'created'), ('2024-01-02 00:00+00', 'changed');
"""

GOOSE_HISTORY = (
    (0, True, "2023-01-01 00:00:00"),
    (1, True, "2023-01-01 00:00:01"),
    (20241215120000, True, "2024-12-15 12:00:00"),
    (20250101000000, True, "2025-01-01 00:00:00"),
    (20250101000000, False, "2025-01-02 00:00:00"),
    (20250201000000, True, "2025-02-01 00:00:00"),
)


def ensure_roles(cluster, *names: str) -> None:
    """Create NOLOGIN roles that do not exist yet (roles are cluster-wide: tests share them)."""
    with contextlib.closing(cluster.connect()) as conn, conn.cursor() as cur:
        for name in names:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
            if cur.fetchone():
                continue
            with contextlib.suppress(pg_errors.DuplicateObject, pg_errors.UniqueViolation):
                cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))


def _create_database(cluster, dbname: str, owner: str | None = None) -> None:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
    if owner:
        statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    with contextlib.closing(cluster.connect()) as conn, conn.cursor() as cur:
        cur.execute(statement)


def server_supports_xml(cluster) -> bool:
    with contextlib.closing(cluster.connect()) as conn, conn.cursor() as cur:
        try:
            cur.execute("SELECT '<a/>'::xml")
        except psycopg2.errors.FeatureNotSupported:
            return False
    return True


@contextlib.contextmanager
def _transaction(conn):
    """A cursor inside one transaction of ``conn``: committed at the end, rolled back on error."""
    with conn, conn.cursor() as cur:
        yield cur


def build_edge_database(cluster, dbname: str, owner: str = "edge_owner", extension_schema: str = "public") -> None:
    """Create ``dbname`` with the edge schema in ``public``, owned by ``owner``, in one transaction.

    ``extension_schema`` is where citext and btree_gist are installed (``public`` like a default
    ``CREATE EXTENSION``, or another schema, created when missing).
    """
    ensure_roles(cluster, owner, READER_ROLE, WRITER_ROLE)
    _create_database(cluster, dbname, owner)
    xml = "'<doc a=\"1\">x &amp; y <![CDATA[<raw>]]></doc>'" if server_supports_xml(cluster) else "NULL"
    empty_xml = "''" if xml != "NULL" else "NULL"
    data = EDGE_DATA_SQL
    for placeholder, value in (
        ("{xml}", xml),
        ("{empty_xml}", empty_xml),
        ("{text_chunks}", str(BIG_TEXT_CHUNKS)),
        ("{bytea_chunks}", str(BIG_BYTEA_CHUNKS)),
    ):
        data = data.replace(placeholder, value)
    ext_schema = sql.Identifier(extension_schema)
    with contextlib.closing(cluster.connect(dbname, autocommit=False)) as conn, _transaction(conn) as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ext_schema))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO PUBLIC").format(ext_schema))
        for extension in EDGE_EXTENSIONS:
            cur.execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}").format(
                    sql.Identifier(extension), ext_schema
                )
            )
        cur.execute(sql.SQL("SET LOCAL search_path = public, {}").format(ext_schema))
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        cur.execute(EDGE_SCHEMA_SQL)
        cur.execute(sql.SQL(GOOSE_POSTGRES_DDL).format(table=sql.Identifier("public", GOOSE_TABLE)))
        cur.execute(
            sql.SQL("COMMENT ON TABLE {} IS 'goose version history'").format(sql.Identifier("public", GOOSE_TABLE))
        )
        cur.executemany(
            sql.SQL("INSERT INTO {} (version_id, is_applied, tstamp) VALUES (%s, %s, %s)").format(
                sql.Identifier("public", GOOSE_TABLE)
            ),
            GOOSE_HISTORY,
        )
        cur.execute(data)
        cur.execute("RESET ROLE")
        # A table (and its serial sequence) owned by another role than the rest.
        cur.execute(sql.SQL("ALTER TABLE public.audit_log OWNER TO {}").format(sql.Identifier(WRITER_ROLE)))


UNSUPPORTED_KINDS = (
    "trigger",
    "function",
    "policy",
    "partitioned",
    "inheritance",
    "rule",
    "materialized_view",
    "foreign_table",
)

_BASE_SQL = """
CREATE TABLE public.items (id integer PRIMARY KEY, owner_name text NOT NULL DEFAULT current_user, body text);
INSERT INTO public.items (id, owner_name, body) VALUES (1, 'edge_owner', 'one'), (2, 'someone', 'two');
"""

# kind -> (statements, name of the offending object)
_UNSUPPORTED_SQL = {
    # The trigger function lives outside the copied schema: the trigger itself is the offending object.
    "trigger": (
        """
        CREATE SCHEMA edge_util;
        CREATE FUNCTION edge_util.touch() RETURNS trigger LANGUAGE plpgsql AS
            $$BEGIN NEW.body := coalesce(NEW.body, '') || '!'; RETURN NEW; END$$;
        CREATE TRIGGER items_touch BEFORE UPDATE ON public.items FOR EACH ROW EXECUTE FUNCTION edge_util.touch();
        """,
        "items_touch",
    ),
    "function": (
        "CREATE FUNCTION public.items_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM public.items';",
        "items_count",
    ),
    "policy": (
        """
        ALTER TABLE public.items ENABLE ROW LEVEL SECURITY;
        CREATE POLICY items_owner_policy ON public.items USING (owner_name = current_user);
        """,
        "items_owner_policy",
    ),
    "partitioned": (
        """
        CREATE TABLE public.measurements (at date NOT NULL, value numeric) PARTITION BY RANGE (at);
        CREATE TABLE public.measurements_2024 PARTITION OF public.measurements
            FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        INSERT INTO public.measurements VALUES ('2024-06-01', 1.5);
        """,
        "measurements",
    ),
    # The child table is the offending object (its parent alone would be an ordinary table).
    "inheritance": (
        """
        CREATE TABLE public.items_archive (archived_at timestamptz) INHERITS (public.items);
        INSERT INTO public.items_archive (id, owner_name, body, archived_at) VALUES (3, 'x', 'old', now());
        """,
        "items_archive",
    ),
    "rule": (
        "CREATE RULE items_no_delete AS ON DELETE TO public.items DO INSTEAD NOTHING;",
        "items_no_delete",
    ),
    "materialized_view": (
        "CREATE MATERIALIZED VIEW public.items_totals AS SELECT count(*) AS items FROM public.items;",
        "items_totals",
    ),
    "foreign_table": (
        """
        CREATE EXTENSION postgres_fdw;
        CREATE SERVER edge_remote FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'postgres');
        CREATE FOREIGN TABLE public.remote_items (id integer, body text)
            SERVER edge_remote OPTIONS (schema_name 'public', table_name 'items');
        """,
        "remote_items",
    ),
}


def build_unsupported_database(cluster, dbname: str, kind: str) -> str:
    """Create ``dbname`` with a table ``items`` and one object of ``kind``; return that object's name.

    ``foreign_table`` needs postgres_fdw: the test is skipped (``pytest.skip``) on a server without it.
    """
    if kind not in UNSUPPORTED_KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(UNSUPPORTED_KINDS)}")
    if kind == "foreign_table" and not cluster.query(
        "postgres", "SELECT 1 FROM pg_available_extensions WHERE name = 'postgres_fdw'"
    ):
        import pytest

        pytest.skip("postgres_fdw is not available on this server")
    statements, name = _UNSUPPORTED_SQL[kind]
    _create_database(cluster, dbname)
    with contextlib.closing(cluster.connect(dbname, autocommit=False)) as conn, _transaction(conn) as cur:
        cur.execute(_BASE_SQL)
        cur.execute(statements)
    return name
