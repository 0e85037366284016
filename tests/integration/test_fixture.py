"""The legacy Lamassu fixture generator builds the layout of lamassu-layout.md, deterministically."""

from __future__ import annotations

import base64
import contextlib
import uuid
from typing import NamedTuple

import psycopg2
import pytest
from psycopg2 import sql

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import GOOSE_TABLE, SERVICES
from tests.harness.fixture import (
    GO_MIGRATIONS,
    GOOSE_HISTORY,
    LATEST_RELEASE,
    NEW_IN_V3_8_0,
    OLDER_RELEASE,
    RELEASES,
    build_legacy,
    row_counts,
    sql_sections,
)

SCALE = 0.001

TABLES = {
    "ca": {"certificates", "ca_certificates", "issuance_profiles"},
    "devicemanager": {"devices", "device_groups"},
    "dmsmanager": {"dms"},
    "alerts": {"events", "subscriptions"},
    "va": {"va_role"},
    "kms": {"kms_keys"},
}

# lamassu-layout.md: migrations per database, newest version, Go migrations.
LAYOUT_HISTORY = [
    ("ca", 18, 20260520120000, {20250123125500, 20250226114600, 20250908074250, 20250915090500, 20260331120000}),
    ("devicemanager", 5, 20260120114736, {20250925120000}),
    ("dmsmanager", 6, 20260604110000, {20241230124809, 20250612100530, 20260604110000}),
    ("alerts", 1, 1, set()),
    ("va", 1, 1, set()),
    ("kms", 2, 20251031174938, set()),
]


class Legacy(NamedTuple):
    prefix: str
    summary: dict


def new_prefix(tag: str) -> str:
    return f"fx_{tag}_{uuid.uuid4().hex[:8]}_"


def query(cluster, database: str, statement, params=None) -> list[tuple]:
    with contextlib.closing(cluster.connect(database)) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall()


def drop_databases(cluster, prefix: str) -> None:
    with contextlib.closing(cluster.connect("postgres")) as conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,))
        for (name,) in cur.fetchall():
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def checksums(cluster, database: str) -> dict[str, str]:
    """md5 of every table's rows in a fixed order, goose table included."""
    tables = [
        name for (name,) in query(cluster, database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    return {
        name: query(
            cluster,
            database,
            sql.SQL("SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM {} AS t").format(
                sql.Identifier(name)
            ),
        )[0][0]
        for name in tables
    }


@pytest.fixture(scope="module")
def legacy(pg):
    prefix = new_prefix("shape")
    summary = build_legacy(pg, scale=SCALE, prefix=prefix)
    yield Legacy(prefix, summary)
    drop_databases(pg, prefix)


@pytest.mark.parametrize(("service", "count", "newest", "go_versions"), LAYOUT_HISTORY)
def test_goose_history_constant_matches_layout(service, count, newest, go_versions):
    versions = GOOSE_HISTORY[service]
    assert len(versions) == count
    assert versions[-1] == newest
    assert list(versions) == sorted(set(versions))
    assert go_versions == GO_MIGRATIONS[service] and go_versions <= set(versions)


def test_releases_issue_12_section_2():
    """The latest model is v3.8.0's history; the older one is v3.8.0's less what v3.8.0 added."""
    assert GOOSE_HISTORY is RELEASES[LATEST_RELEASE].history and LATEST_RELEASE == "v3.8.0"
    ca = set(GOOSE_HISTORY["ca"])
    assert {20241223183344, 20251001120000, 20251106000000} <= ca
    assert not {20250105155900, 20250307114600, 20260414120000} & ca
    assert 20260120114735 in GOOSE_HISTORY["devicemanager"] and 20260119070459 not in GOOSE_HISTORY["devicemanager"]
    assert 20251217120000 in GOOSE_HISTORY["dmsmanager"] and 20260511120000 not in GOOSE_HISTORY["dmsmanager"]
    older = RELEASES[OLDER_RELEASE]
    assert older.module == "github.com/lamassuiot/lamassuiot/engines/storage/postgres/v3@v3.7.0"
    for service, versions in GOOSE_HISTORY.items():
        new = NEW_IN_V3_8_0.get(service, ())
        assert set(new) <= set(versions)
        assert older.history[service] == tuple(v for v in versions if v not in new)
        assert all(v > max(older.history[service]) for v in new)
    # ca_certificate_requests is gone in both: 20251106000000 dropped it.
    assert all("ca_certificate_requests" not in body for body in sql_sections("ca", OLDER_RELEASE).values())


def test_summary_covers_every_service(legacy):
    prefix, summary = legacy.prefix, legacy.summary
    counts = row_counts(SCALE)
    assert set(summary) == {prefix + service for service in SERVICES}
    for service in SERVICES:
        facts = summary[prefix + service]
        assert facts["service"] == service
        assert facts["created"] is True
        assert set(facts["tables"]) == TABLES[service] | {GOOSE_TABLE}
        assert all(rows > 0 for rows in facts["tables"].values()), facts["tables"]
        assert facts["goose_version"] == GOOSE_HISTORY[service][-1]
        assert facts["bytes"] > 0
    ca = summary[prefix + "ca"]["tables"]
    assert ca["certificates"] == counts["n_certificates"]
    assert ca["ca_certificates"] == counts["n_ca"]
    assert summary[prefix + "devicemanager"]["tables"]["devices"] == counts["n_devices"]


@pytest.mark.parametrize("service", SERVICES)
def test_goose_table_is_goose_ddl_with_history(pg, legacy, service):
    prefix = legacy.prefix
    database = prefix + service
    columns = query(
        pg,
        database,
        "SELECT column_name, data_type, is_nullable, is_identity, identity_generation, column_default"
        " FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        (GOOSE_TABLE,),
    )
    assert columns == [
        ("id", "integer", "NO", "YES", "BY DEFAULT", None),
        ("version_id", "bigint", "NO", "NO", None, None),
        ("is_applied", "boolean", "NO", "NO", None, None),
        ("tstamp", "timestamp without time zone", "NO", "NO", None, "now()"),
    ]
    rows = query(
        pg, database, sql.SQL("SELECT version_id, is_applied FROM {} ORDER BY id").format(sql.Identifier(GOOSE_TABLE))
    )
    assert rows == [(0, True)] + [(version, True) for version in GOOSE_HISTORY[service]]
    stamps = query(pg, database, sql.SQL("SELECT tstamp FROM {} ORDER BY id").format(sql.Identifier(GOOSE_TABLE)))
    assert stamps == sorted(stamps)


def test_ca_certificates_foreign_key_cascades(pg, legacy):
    prefix = legacy.prefix
    database = prefix + "ca"
    fk = query(
        pg,
        database,
        "SELECT conrelid::regclass::text, confrelid::regclass::text, confdeltype, convalidated, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE conname = 'fk_serial_number'",
    )
    assert fk == [
        (
            "ca_certificates",
            "certificates",
            "c",
            True,
            "FOREIGN KEY (serial_number) REFERENCES certificates(serial_number) ON DELETE CASCADE",
        )
    ]
    primary = query(
        pg, database, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ca_certificates_pkey'"
    )
    assert primary == [("PRIMARY KEY (serial_number, id)",)]
    with contextlib.closing(pg.connect(database, autocommit=False)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM ca_certificates")
        before = cur.fetchone()[0]
        cur.execute("DELETE FROM certificates WHERE serial_number = (SELECT min(serial_number) FROM ca_certificates)")
        cur.execute("SELECT count(*) FROM ca_certificates")
        assert cur.fetchone()[0] == before - 1
        conn.rollback()


def test_device_groups_uuid_default_unique_self_reference_indexes(pg, legacy):
    prefix = legacy.prefix
    database = prefix + "devicemanager"
    defaults = dict(
        query(
            pg,
            database,
            "SELECT column_name, column_default FROM information_schema.columns"
            " WHERE table_name = 'device_groups' AND column_default IS NOT NULL",
        )
    )
    assert defaults == {
        "id": "gen_random_uuid()",
        "criteria": "'[]'::jsonb",
        "created_at": "now()",
        "updated_at": "now()",
    }
    constraints = dict(
        query(
            pg,
            database,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'device_groups'::regclass"
            " AND contype <> 'n'",  # PostgreSQL 18 records NOT NULL constraints too
        )
    )
    assert constraints == {
        "device_groups_pkey": "PRIMARY KEY (id)",
        "device_groups_name_key": "UNIQUE (name)",
        "device_groups_parent_id_fkey": "FOREIGN KEY (parent_id) REFERENCES device_groups(id) ON DELETE CASCADE",
    }
    secondary = query(
        pg,
        database,
        "SELECT count(*) FROM pg_index WHERE indrelid = 'device_groups'::regclass AND NOT indisunique AND NOT indisprimary",
    )
    assert secondary == [(2,)]
    depth = query(
        pg,
        database,
        "WITH RECURSIVE chain AS (SELECT id, 0 AS depth FROM device_groups WHERE parent_id IS NULL"
        " UNION ALL SELECT g.id, c.depth + 1 FROM device_groups g JOIN chain c ON g.parent_id = c.id)"
        " SELECT max(depth) FROM chain",
    )
    assert depth[0][0] >= 2
    with contextlib.closing(pg.connect(database, autocommit=False)) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO device_groups (name) VALUES ('fixture-test') RETURNING id, criteria")
        new_id, criteria = cur.fetchone()
        assert uuid.UUID(new_id) and criteria == []
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute("INSERT INTO device_groups (name) VALUES ('fixture-test')")
        conn.rollback()


def test_kms_va_dms_shapes(pg, legacy):
    prefix = legacy.prefix
    keys = query(
        pg,
        prefix + "kms",
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'kms_keys'::regclass"
        " AND contype <> 'n'",
    )
    assert keys == [("keys_pkey", "PRIMARY KEY (key_id)")]
    kms_defaults = dict(
        query(
            pg,
            prefix + "kms",
            "SELECT column_name, column_default FROM information_schema.columns"
            " WHERE table_name = 'kms_keys' AND column_default IS NOT NULL",
        )
    )
    assert kms_defaults == {"aliases": "'[]'::jsonb", "has_private_key": "true", "tags": "'[]'::jsonb"}
    # Some keys were written without those columns: the defaults filled them.
    assert query(pg, prefix + "kms", "SELECT count(*) > 0 FROM kms_keys WHERE tags = '[]' AND aliases = '[]'") == [
        (True,)
    ]
    va_types = dict(
        query(
            pg,
            prefix + "va",
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'va_role'",
        )
    )
    assert va_types["latest_crl_version"] == "numeric"
    assert va_types["crl_regenerate_on_revoke"] == "boolean"
    assert query(pg, prefix + "va", "SELECT max(latest_crl_version) > 9223372036854775807 FROM va_role") == [(True,)]
    va_key = query(
        pg,
        prefix + "va",
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'va_role'::regclass AND contype <> 'n'",
    )
    assert va_key == [("PRIMARY KEY (ca_ski)",)]
    dms_types = dict(
        query(
            pg,
            prefix + "dmsmanager",
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'dms'",
        )
    )
    assert dms_types["metadata"] == dms_types["settings"] == "jsonb"


def test_everything_owned_by_the_application_role(pg, legacy):
    prefix = legacy.prefix
    for service in SERVICES:
        database = prefix + service
        owner = query(pg, "postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (database,))
        assert owner == [("admin",)], database
        owners = query(
            pg,
            database,
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
        )
        assert owners == [("admin",)]
    assert query(pg, "postgres", "SELECT rolsuper FROM pg_roles WHERE rolname = 'admin'") == [(False,)]


def test_certificates_data_is_varied_and_incompressible(pg, legacy):
    prefix = legacy.prefix
    database = prefix + "ca"
    lengths = query(pg, database, "SELECT min(length(certificate)), max(length(certificate)) FROM certificates")
    low, high = lengths[0]
    assert low >= 900 and high <= 3100 and high - low > 1000
    sample = query(pg, database, "SELECT certificate FROM certificates ORDER BY serial_number LIMIT 1")[0][0]
    assert base64.b64decode(sample).startswith(b"-----BEGIN CERTIFICATE-----\n")
    variety = query(
        pg,
        database,
        "SELECT count(*) FILTER (WHERE subject_organization IS NULL),"
        " count(*) FILTER (WHERE subject_organization = ''),"
        " count(*) FILTER (WHERE subject_organization_unit ~ '[^[:ascii:]]' OR metadata::text ~ '[^[:ascii:]]'),"
        " count(*) FILTER (WHERE is_ca), count(DISTINCT status)"
        " FROM certificates",
    )[0]
    assert all(value > 0 for value in variety[:4]) and variety[4] == 3
    # The certificate column stays about as large on disk as the text: no compression shrank it.
    ratio = query(
        pg, database, "SELECT sum(pg_column_size(certificate))::float / sum(length(certificate)) FROM certificates"
    )
    assert ratio[0][0] > 0.95


def test_same_scale_gives_identical_data(pg):
    prefix = new_prefix("det")
    try:
        build_legacy(pg, scale=SCALE, prefix=prefix)
        first = {service: checksums(pg, prefix + service) for service in SERVICES}
        build_legacy(pg, scale=SCALE, prefix=prefix, drop_existing=True)
        second = {service: checksums(pg, prefix + service) for service in SERVICES}
    finally:
        drop_databases(pg, prefix)
    assert first == second
    assert all(len(tables) == len(TABLES[service]) + 1 for service, tables in first.items())


def test_keep_existing_leaves_a_database_alone(pg):
    prefix = new_prefix("keep")
    database = prefix + "va"
    try:
        build_legacy(pg, scale=SCALE, services=["va"], prefix=prefix)
        with contextlib.closing(pg.connect(database)) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO va_role (ca_ski) VALUES ('marker')")
        kept = build_legacy(pg, scale=SCALE, services=["va"], prefix=prefix, drop_existing=False)
        assert kept[database]["created"] is False
        assert query(pg, database, "SELECT count(*) FROM va_role WHERE ca_ski = 'marker'") == [(1,)]
        rebuilt = build_legacy(pg, scale=SCALE, services=["va"], prefix=prefix)
        assert rebuilt[database]["created"] is True
        assert query(pg, database, "SELECT count(*) FROM va_role WHERE ca_ski = 'marker'") == [(0,)]
    finally:
        drop_databases(pg, prefix)


def test_application_role_with_password_can_log_in(pg):
    prefix = new_prefix("login")
    role = f"fx_app_{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    try:
        summary = build_legacy(
            pg, scale=SCALE, services=["alerts"], app_role=role, app_password=password, prefix=prefix
        )
        assert password not in repr(summary)
        conn = psycopg2.connect(host=pg.host, port=pg.port, user=role, password=password, dbname=prefix + "alerts")
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute(
                "SELECT current_user, count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
            )
            assert cur.fetchone() == (role, 3)
    finally:
        drop_databases(pg, prefix)
        with contextlib.closing(pg.connect("postgres")) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.mark.parametrize(("kwargs", "message"), [({"services": ["ca", "billing"]}, "billing"), ({"scale": 0}, "scale")])
def test_bad_arguments_change_nothing(pg, kwargs, message):
    prefix = new_prefix("bad")
    with pytest.raises(ValueError, match=message):
        build_legacy(pg, prefix=prefix, **kwargs)
    assert query(pg, "postgres", "SELECT count(*) FROM pg_database WHERE starts_with(datname, %s)", (prefix,)) == [(0,)]
