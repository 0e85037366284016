"""The legacy fixture at real Lamassu releases: goose history semantics hold in the copy, in info and in migrate.

Three models: the latest release (v3.8.0, nothing pending against ``tests/fixtures/migrations``), the older
one (v3.7.0, real SQL and ported Go migrations pending) and the older one with the goose tables the 3.2.0
chart upgrade guide made by hand (version 1 only, no version-0 row).
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest
from psycopg2 import sql

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import GOOSE_TABLE, SERVICES
from tests.harness.ansible import run_module, run_tasks
from tests.harness.catalog import compare_schemas
from tests.harness.fixture import (
    CHART_V3_2_0_SERVICES,
    GO_MIGRATIONS,
    LATEST_RELEASE,
    NEW_IN_V3_8_0,
    OLDER_RELEASE,
    RELEASES,
    build_legacy,
    goose_rows,
)
from tests.integration.test_db_to_schema import assert_faithful

MIGRATIONS = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"
MODELS = {
    "latest": (LATEST_RELEASE, "goose"),
    "older": (OLDER_RELEASE, "goose"),
    "chart-v3.2.0": (OLDER_RELEASE, "chart-v3.2.0"),
}


def query(cluster, database: str, statement, params=None) -> list[tuple]:
    with contextlib.closing(cluster.connect(database)) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall()


def goose_table(cluster, database: str, schema: str = "public") -> list[tuple]:
    table = sql.Identifier(schema, GOOSE_TABLE)
    return query(cluster, database, sql.SQL("SELECT version_id, is_applied, tstamp FROM {} ORDER BY id").format(table))


def expected_pending(release: str, service: str) -> list[int]:
    return [] if release == LATEST_RELEASE else list(NEW_IN_V3_8_0.get(service, ()))


def style_of(goose: str, service: str) -> str:
    return "chart-v3.2.0" if goose == "chart-v3.2.0" and service in CHART_V3_2_0_SERVICES else "goose"


@pytest.fixture(scope="module")
def built(pg):
    """Each model built once under its own prefix; removed at the end."""
    tag = uuid.uuid4().hex[:6]
    models = {}
    for name, (release, goose) in MODELS.items():
        prefix = f"rel_{tag}_{name.replace('.', '').replace('-', '')}_"
        models[name] = (prefix, build_legacy(pg, scale=0.001, prefix=prefix, release=release, goose_table=goose))
    yield models
    with contextlib.closing(pg.connect("postgres")) as conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (f"rel_{tag}_",))
        for (name,) in cur.fetchall():
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.parametrize("model", MODELS)
def test_goose_table_holds_the_release_history(pg, built, model):
    release, goose = MODELS[model]
    prefix, summary = built[model]
    history = RELEASES[release].history
    for service in SERVICES:
        facts = summary[prefix + service]
        assert facts["release"] == release and facts["goose_table"] == style_of(goose, service)
        assert facts["goose_version"] == max(history[service])
        rows = goose_table(pg, prefix + service)
        assert [(v, t) for v, _applied, t in rows] == goose_rows(history[service], style_of(goose, service))
        assert all(applied for _v, applied, _t in rows)
        versions = [v for v, _applied, _t in rows]
        if style_of(goose, service) == "chart-v3.2.0":
            # The guide's table: version 1 by hand, no version 0; the services' goose added the rest.
            assert versions[0] == 1 and 0 not in versions
        else:
            assert versions[0] == 0
        assert versions[1 if versions[0] == 0 else 0 :] == list(history[service])


def test_release_table_shapes(pg, built):
    """What differs between the two releases is what v3.8.0's migrations changed."""
    latest, older = built["latest"][0], built["older"][0]

    def types(prefix, service, table):
        return dict(
            query(
                pg,
                prefix + service,
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
                (table,),
            )
        )

    for prefix in (older, latest):  # 20251217120000, 20260120114735 and 20260113212700 came with v3.7.0
        assert types(prefix, "ca", "certificates")["metadata"] == "jsonb"
        assert types(prefix, "devicemanager", "devices")["identity_slot"] == "jsonb"
        assert types(prefix, "dmsmanager", "dms")["settings"] == "jsonb"
    assert "version_schema" in types(older, "ca", "certificates")
    assert "version_schema" not in types(latest, "ca", "certificates")
    assert "extensions_key_usage" in types(latest, "ca", "certificates")
    assert not {"has_private_key", "level"} & set(types(latest, "ca", "certificates"))
    assert "device_groups" not in built["older"][1][older + "devicemanager"]["tables"]
    for prefix in (latest, older):  # 20251106000000 dropped it before v3.7.0
        assert query(pg, prefix + "ca", "SELECT to_regclass('ca_certificate_requests')") == [(None,)]


def test_chart_table_ddl_is_the_guides(pg, built):
    prefix = built["chart-v3.2.0"][0]
    describe = (
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,"
        " pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d"
        " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = 'goose_db_version'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
    )
    assert query(pg, prefix + "ca", describe) == [
        ("id", "integer", True, "d", None),
        ("version_id", "bigint", True, "", None),
        ("is_applied", "boolean", True, "", None),
        ("tstamp", "timestamp without time zone", True, "", "now()"),
    ]
    assert query(
        pg,
        prefix + "ca",
        "SELECT conname FROM pg_constraint WHERE conrelid = 'goose_db_version'::regclass AND contype = 'p'",
    ) == [("goose_db_version_pkey",)]
    # va and kms were not in the guide: their services created goose's own table.
    assert goose_table(pg, prefix + "kms")[0][0] == 0 and goose_table(pg, prefix + "va")[0][0] == 0


def info(pg, prefix: str, database: str, **args) -> dict:
    params = {"database": database, "services": list(SERVICES), "source_prefix": prefix, **args}
    result = run_module("postgres_lamassu_info", params, pg).result
    assert not result.get("failed"), result
    return result


@pytest.mark.parametrize("model", MODELS)
def test_copy_info_and_migrate_agree_with_the_goose_table(pg, built, model):
    release, goose = MODELS[model]
    prefix, _summary = built[model]
    history = RELEASES[release].history
    target = f"{prefix}lamassu"

    # info on the legacy databases: their versions, and what the migrations tree leaves pending.
    before = info(pg, prefix, target, migrations_path=str(MIGRATIONS))
    assert before["phases"]["legacy"] == list(SERVICES)
    for service in SERVICES:
        assert before["legacy"][service]["goose_version"] == max(history[service])
        pending = before["services"][service]["pending_migrations"]
        assert [p["version"] for p in pending] == expected_pending(release, service), (service, pending)
        assert before["services"][service]["blocked_go_migrations"] == []

    # The copy: faithful, goose table included, row for row.
    copies = run_tasks(
        [{"lamassuiot.postgres.postgres_lamassu_schema": {"database": target, "schemas": list(SERVICES)}}]
        + [
            {
                "lamassuiot.postgres.postgres_db_to_schema": {
                    "source_database": prefix + service,
                    "target_database": target,
                    "target_schema": service,
                }
            }
            for service in SERVICES
        ],
        pg,
    )
    assert not any(r.get("failed") for r in copies.results), copies.output
    for service in SERVICES:
        assert_faithful(pg, prefix + service, target, service)
        assert goose_table(pg, target, service) == goose_table(pg, prefix + service)

    copied = info(pg, prefix, target, migrations_path=str(MIGRATIONS))
    for service in SERVICES:
        facts = copied["services"][service]
        assert facts["copied_goose_version"] == facts["schema_goose_version"] == max(history[service])
        assert [p["version"] for p in facts["pending_migrations"]] == expected_pending(release, service)
        phase = "migrated" if not expected_pending(release, service) else "copied"
        assert service in copied["phases"][phase], (service, copied["phases"])

    # migrate status reads the applied set the goose table holds; no version 0 appears, pending or not.
    common = [{"database": target, "schema": service, "path": str(MIGRATIONS / service)} for service in SERVICES]
    status = run_tasks(
        [{"lamassuiot.postgres.postgres_lamassu_migrate": {**args, "command": "status"}} for args in common], pg
    )
    for service, result in zip(SERVICES, status.results, strict=True):
        assert not result.get("failed"), result
        states = {m["version"]: m["state"] for m in result["migrations"]}
        assert 0 not in states
        assert {v for v, s in states.items() if s in ("applied", "gone")} == set(history[service])
        assert [v for v, s in states.items() if s == "pending"] == expected_pending(release, service)
        assert "missing" not in states.values()
        assert result["version_before"] == result["version_after"] == max(history[service])
        assert [p["version"] for p in result["pending"]] == expected_pending(release, service)

    # migrate up applies exactly the pending ones (Go ones through their ports), after the recorded rows.
    up = run_tasks([{"lamassuiot.postgres.postgres_lamassu_migrate": args} for args in common], pg)
    for service, result in zip(SERVICES, up.results, strict=True):
        assert not result.get("failed"), result
        applied = [a["version"] for a in result["applied"]]
        assert applied == expected_pending(release, service)
        assert {a["kind"] for a in result["applied"] if a["version"] in GO_MIGRATIONS[service]} <= {"py"}
        rows = goose_table(pg, target, service)
        before_rows = goose_table(pg, prefix + service)
        assert rows[: len(before_rows)] == before_rows
        assert [v for v, _a, _t in rows[len(before_rows) :]] == applied
        assert (0 in [v for v, _a, _t in rows]) == (style_of(goose, service) == "goose")
        assert result["version_after"] == max(RELEASES[LATEST_RELEASE].history[service])

    after = info(pg, prefix, target, migrations_path=str(MIGRATIONS))
    assert after["phases"]["migrated"] == list(SERVICES)


def test_older_release_migrated_has_the_latest_release_tables(pg, built):
    """v3.7.0 copied and migrated with the tree ends with the tables of v3.8.0 (owners and counters aside)."""
    older, latest = built["older"][0], built["latest"][0]
    target = f"{older}shape"
    pg.execute("postgres", f'CREATE DATABASE "{target}"')
    tasks = []
    for service in ("ca", "devicemanager", "dmsmanager"):
        tasks.append(
            {
                "lamassuiot.postgres.postgres_db_to_schema": {
                    "source_database": older + service,
                    "target_database": target,
                    "target_schema": service,
                }
            }
        )
        tasks.append(
            {
                "lamassuiot.postgres.postgres_lamassu_migrate": {
                    "database": target,
                    "schema": service,
                    "path": str(MIGRATIONS / service),
                }
            }
        )
    run = run_tasks(tasks, pg)
    assert not any(r.get("failed") for r in run.results), run.output
    for service in ("ca", "devicemanager", "dmsmanager"):
        with (
            contextlib.closing(pg.connect(target)) as migrated,
            contextlib.closing(pg.connect(latest + service)) as built_latest,
        ):
            differences = [
                d
                for d in compare_schemas(migrated, service, built_latest, "public", data=False)
                if not any(part in d for part in (".owner:", ".acl:", ".last_value:"))
            ]
        assert not differences, (service, differences[:20])
