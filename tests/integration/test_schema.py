"""postgres_lamassu_schema through Ansible against a real PostgreSQL: check -> apply -> re-run."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import SERVICES
from tests.harness.ansible import run_module, run_tasks

MODULE = "postgres_lamassu_schema"


def catalog(pg, database: str) -> dict:
    """Databases, and schemas with owner and relations of ``database`` when it exists."""
    databases = pg.query("postgres", "SELECT datname, pg_get_userbyid(datdba) FROM pg_database ORDER BY 1")
    snapshot = {"databases": databases}
    if any(row[0] == database for row in databases):
        snapshot["schemas"] = pg.query(
            database,
            "SELECT n.nspname, pg_get_userbyid(n.nspowner), c.relname, c.reltuples FROM pg_namespace n "
            "LEFT JOIN pg_class c ON c.relnamespace = n.oid WHERE n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 3",
        )
        snapshot["relations"] = pg.query(database, "SELECT count(*) FROM pg_class")
    return snapshot


def sql(pg, database: str, *statements: str) -> None:
    pg.execute(database, *statements)


@pytest.fixture
def database(pg, unique_name):
    yield unique_name
    pg.execute("postgres", f'DROP DATABASE IF EXISTS "{unique_name}" WITH (FORCE)')


@pytest.fixture
def app_role(pg):
    pg.execute(
        "postgres", "DO $$BEGIN CREATE ROLE lamassu_app NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$"
    )
    return "lamassu_app"


def test_check_apply_rerun(pg, database, app_role):
    before = catalog(pg, database)
    check = run_module(MODULE, {"database": database, "owner": app_role}, pg, check=True, diff=True).result
    assert check["changed"] is True
    assert catalog(pg, database) == before, "check mode changed the catalog"
    expected = [f'CREATE DATABASE "{database}" OWNER "{app_role}"'] + [
        f'CREATE SCHEMA "{name}" AUTHORIZATION "{app_role}"' for name in SERVICES
    ]
    assert check["queries"] == expected
    assert check["diff"]["before"]["exists"] is False

    applied = run_module(MODULE, {"database": database, "owner": app_role}, pg, diff=True).result
    assert applied["changed"] is True
    assert applied["queries"] == expected
    assert applied["database"] == {"name": database, "created": True}
    assert [(s["name"], s["state"], s["owner"]) for s in applied["schemas"]] == [
        (name, "created", app_role) for name in SERVICES
    ]
    assert applied["diff"]["after"]["schemas"] == sorted(SERVICES)
    snapshot = catalog(pg, database)
    assert (database, app_role) in snapshot["databases"]
    assert {row[0] for row in snapshot["schemas"]} >= set(SERVICES)

    again = run_module(MODULE, {"database": database, "owner": app_role}, pg).result
    assert again["changed"] is False
    assert again["queries"] == []
    assert {s["state"] for s in again["schemas"]} == {"present"}
    assert catalog(pg, database) == snapshot


def test_owner_change(pg, database, app_role):
    run_module(MODULE, {"database": database, "schemas": ["ca", "kms"]}, pg)
    check = run_module(MODULE, {"database": database, "schemas": ["ca", "kms"], "owner": app_role}, pg, check=True)
    assert check.result["queries"] == [f'ALTER SCHEMA "{s}" OWNER TO "{app_role}"' for s in ("ca", "kms")]
    assert {row[1] for row in catalog(pg, database)["schemas"] if row[0] in ("ca", "kms")} == {"postgres"}
    result = run_module(MODULE, {"database": database, "schemas": ["ca", "kms"], "owner": app_role}, pg).result
    assert result["changed"] is True
    assert [s["owner"] for s in result["schemas"]] == [app_role, app_role]
    assert {row[1] for row in catalog(pg, database)["schemas"] if row[0] in ("ca", "kms")} == {app_role}


def test_unknown_owner_is_refused_before_any_change(pg, database):
    before = catalog(pg, database)
    result = run_module(MODULE, {"database": database, "owner": "no_such_role"}, pg).result
    assert result["failed"] is True
    assert "no_such_role" in result["msg"] and "does not exist" in result["msg"]
    assert catalog(pg, database) == before


def test_absent_refuses_non_empty_schema_and_changes_nothing(pg, database):
    run_module(MODULE, {"database": database, "schemas": ["ca", "va"]}, pg)
    sql(pg, database, "CREATE TABLE ca.certificates (serial_number text PRIMARY KEY)")
    before = catalog(pg, database)
    result = run_module(MODULE, {"database": database, "schemas": ["va", "ca"], "state": "absent"}, pg).result
    assert result["failed"] is True
    assert "cascade" in result["msg"] and "certificates" in result["msg"]
    assert catalog(pg, database) == before, "a refused drop dropped something (va must survive too)"


def test_absent_with_cascade_then_rerun(pg, database):
    run_module(MODULE, {"database": database, "schemas": ["ca", "va"]}, pg)
    sql(pg, database, "CREATE TABLE ca.certificates (serial_number text PRIMARY KEY)")
    args = {"database": database, "schemas": ["ca", "va"], "state": "absent", "cascade": True}
    check = run_module(MODULE, args, pg, check=True).result
    assert check["queries"] == ['DROP SCHEMA "ca" CASCADE', 'DROP SCHEMA "va"']
    assert {"ca", "va"} <= {row[0] for row in catalog(pg, database)["schemas"]}
    result = run_module(MODULE, args, pg).result
    assert result["changed"] is True
    assert [s["state"] for s in result["schemas"]] == ["dropped", "dropped"]
    remaining = {row[0] for row in catalog(pg, database)["schemas"]}
    assert not {"ca", "va"} & remaining
    again = run_module(MODULE, args, pg).result
    assert again["changed"] is False
    assert [s["state"] for s in again["schemas"]] == ["absent", "absent"]
    assert (database, "postgres") in catalog(pg, database)["databases"], "absent must never drop the database"


def test_truncated_needs_force_and_keeps_goose_history(pg, database):
    run_module(MODULE, {"database": database, "schemas": ["ca"]}, pg)
    sql(
        pg,
        database,
        "CREATE TABLE ca.certificates (serial_number text PRIMARY KEY)",
        "CREATE TABLE ca.ca_certificates (id text, serial_number text REFERENCES ca.certificates)",
        "CREATE TABLE ca.goose_db_version (id int, version_id bigint)",
        "INSERT INTO ca.certificates VALUES ('01'), ('02')",
        "INSERT INTO ca.ca_certificates VALUES ('a', '01')",
        "INSERT INTO ca.goose_db_version VALUES (1, 0), (2, 1)",
    )
    refused = run_module(MODULE, {"database": database, "schemas": ["ca"], "state": "truncated"}, pg).result
    assert refused["failed"] is True and "force" in refused["msg"]
    args = {"database": database, "schemas": ["ca"], "state": "truncated", "force": True}
    result = run_module(MODULE, args, pg).result
    assert result["changed"] is True
    assert result["queries"] == ['TRUNCATE TABLE "ca"."ca_certificates", "ca"."certificates" CASCADE']
    counts = pg.query(
        database, "SELECT (SELECT count(*) FROM ca.certificates), (SELECT count(*) FROM ca.goose_db_version)"
    )
    assert counts == [(0, 2)]
    assert run_module(MODULE, args, pg).result["changed"] is False


HOSTILE = ['we"ird', "has space", "semi;colon", "CamelCase", "drop schema public; --", "ünïcødé"]


def test_hostile_names_are_identifiers_not_sql(pg, database):
    result = run_module(MODULE, {"database": database, "schemas": HOSTILE}, pg).result
    assert result["changed"] is True, result
    schemas = {row[0] for row in catalog(pg, database)["schemas"]}
    assert set(HOSTILE) <= schemas
    assert "public" in schemas
    assert run_module(MODULE, {"database": database, "schemas": HOSTILE}, pg).result["changed"] is False


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schemas", [""], "empty"),
        ("schemas", ["x" * 64], "64 bytes"),
        ("schemas", ["é" * 32], "64 bytes"),
        ("schemas", ["pg_temp_x"], "pg_"),
        ("schemas", ["ca", "ca"], "twice"),
        ("database", "", "empty"),
        ("database", "d" * 70, "70 bytes"),
        ("owner", "", "empty"),
    ],
)
def test_bad_names_fail_before_any_change(pg, database, field, value, message):
    before = catalog(pg, database)
    args = {"database": database, "schemas": ["ca"], field: value}
    result = run_module(MODULE, args, pg).result
    assert result["failed"] is True
    assert message in result["msg"]
    assert result.get("queries", []) == []
    assert catalog(pg, database) == before


@pytest.fixture
def password_role(pg, unique_name):
    role = f"{unique_name}_login"
    sql(pg, "postgres", f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'Correct-Horse-42'")
    yield role
    sql(pg, "postgres", f'DROP ROLE IF EXISTS "{role}"')


def test_wrong_password_is_named_and_never_shown(pg, database, password_role):
    secret = "S3cr3t-Wr0ng-P4ss"
    connection = {**pg.module_defaults(), "login_user": password_role, "login_password": secret}
    run = run_module(MODULE, {"database": database}, pg, connection=connection, verbosity=3)
    result = run.result
    assert result["failed"] is True
    assert "authentication failed" in result["msg"]
    assert f"{pg.host}:{pg.port}" in result["msg"] and password_role in result["msg"] and "postgres" in result["msg"]
    assert secret not in run.output and secret not in str(result)


def test_right_password_connects(pg, database, password_role, app_role):
    connection = {**pg.module_defaults(), "login_user": password_role, "login_password": "Correct-Horse-42"}
    result = run_module(MODULE, {"database": database, "schemas": ["ca"]}, pg, connection=connection).result
    # The role may connect but may not create databases: a clear error naming the statement.
    assert result["failed"] is True
    assert "CREATE DATABASE" in result["msg"] and "permission denied" in result["msg"]
    assert "Correct-Horse-42" not in str(result)


def test_closed_port_names_the_server(pg, database):
    from tests.harness.pgcluster import free_port

    port = free_port()
    connection = {**pg.module_defaults(), "login_port": port, "connect_timeout": 3}
    result = run_module(MODULE, {"database": database}, pg, connection=connection).result
    assert result["failed"] is True
    assert f"{pg.host}:{port}" in result["msg"] and "unreachable" in result["msg"]


def test_module_defaults_set_the_connection_once(pg, database):
    """The action group carries the connection; the tasks name none of it."""
    tasks = [
        {"lamassuiot.postgres.postgres_lamassu_schema": {"database": database, "schemas": ["ca"]}},
        {"lamassuiot.postgres.postgres_lamassu_schema": {"database": database, "schemas": ["ca", "kms"]}},
    ]
    run = run_tasks(tasks, pg)
    assert [r.get("failed", False) for r in run.results] == [False, False]
    assert [r["changed"] for r in run.results] == [True, True]
    assert [s["state"] for s in run.results[1]["schemas"]] == ["present", "created"]
    # Without module_defaults the default (local socket, port 5432) does not reach the throwaway server.
    bare = run_tasks(tasks[:1], pg, connection={"connect_timeout": 2})
    assert bare.result["failed"] is True and "Cannot connect" in bare.result["msg"]
