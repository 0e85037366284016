"""postgres_lamassu_login_check through Ansible: log in as the services will (their config file, or SET ROLE) and
name every missing privilege before they start; never show the password, never change anything."""

from __future__ import annotations

import pytest

from tests.harness.ansible import run_module

MODULE = "postgres_lamassu_login_check"
PASSWORD = "s3cret-Login-pw"


@pytest.fixture
def layout(pg, unique_name, tmp_path):
    """A unified database with schema ``va`` as a copy leaves it: tables and goose table owned by a login role with a
    password (SCRAM), the schema owned by that role, CONNECT and CREATE on the database granted to it."""
    role, database = f"{unique_name}_app", f"{unique_name}_lamassu"
    pg.execute(
        "postgres",
        f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'",
        f"CREATE DATABASE {database}",
        f"REVOKE ALL ON DATABASE {database} FROM PUBLIC",
        f"GRANT CONNECT, CREATE ON DATABASE {database} TO {role}",
    )
    pg.execute(
        database,
        f"CREATE SCHEMA va AUTHORIZATION {role}",
        f"SET ROLE {role}",
        "CREATE TABLE va.goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean "
        "NOT NULL, tstamp timestamp DEFAULT now())",
        "INSERT INTO va.goose_db_version (version_id, is_applied) VALUES (0, true), (1, true)",
        "CREATE TABLE va.va_role (ca_ski text PRIMARY KEY, refresh numeric, enabled boolean)",
        "INSERT INTO va.va_role VALUES ('ski', 1, true)",
    )
    config = tmp_path / "va.yml"
    config.write_text(
        f"logs:\n  level: info\nstorage:\n  provider: postgres\n  username: {role}\n  password: {PASSWORD}\n"
    )
    yield {"role": role, "database": database, "config": str(config)}
    pg.execute("postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", f"DROP ROLE IF EXISTS {role}")


def login_check(pg, layout, check=False, **args):
    params = {"database": layout["database"], "services": ["va"], **args}
    return run_module(MODULE, params, pg, check=check).result


def catalog(pg, layout):
    return pg.query(
        layout["database"],
        "SELECT nspname, nspacl::text FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' ORDER BY 1",
    )


@pytest.mark.parametrize("how", ["config", "set role"])
def test_a_service_with_its_privileges_passes_and_nothing_changes(pg, layout, how):
    args = {"service_configs": {"va": layout["config"]}} if how == "config" else {}
    before = catalog(pg, layout)
    for check in (True, False):
        result = login_check(pg, layout, check=check, **args)
        assert not result.get("failed"), result["problems"]
        assert result["changed"] is False and result["ok"] is True and result["problems"] == []
        va = result["services"]["va"]
        assert va["role"] == layout["role"] and va["ok"] is True
        assert va["login"] == (f"config file {layout['config']}" if how == "config" else "SET ROLE")
        assert va["tables"] == ["goose_db_version", "va_role"]
        assert 'CREATE SCHEMA IF NOT EXISTS "va"' in result["queries"]
        assert 'LOCK TABLE "va"."va_role" IN ROW EXCLUSIVE MODE' in result["queries"]
    assert catalog(pg, layout) == before
    assert pg.query(layout["database"], "SELECT count(*) FROM va.goose_db_version") == [(2,)]


@pytest.mark.parametrize("how", ["config", "set role"])
def test_every_missing_privilege_is_named_and_fails_the_check(pg, layout, how):
    role, database = layout["role"], layout["database"]
    pg.execute("postgres", f"REVOKE CREATE ON DATABASE {database} FROM {role}")
    pg.execute(database, "ALTER TABLE va.va_role OWNER TO postgres", f"GRANT SELECT, INSERT ON va.va_role TO {role}")
    args = {"service_configs": {"va": layout["config"]}} if how == "config" else {"service_role": {"va": role}}
    result = login_check(pg, layout, **args)
    assert result["failed"] is True and result["ok"] is False, result
    problems = result["services"]["va"]["problems"]
    assert any(
        f"lacks CREATE on database '{database}'" in p and "CREATE SCHEMA IF NOT EXISTS va" in p for p in problems
    )
    assert any("lacks UPDATE, DELETE on table va.va_role" in p for p in problems), problems
    assert len(problems) == 2, problems
    assert "2 service login problem(s)" in result["msg"] and PASSWORD not in str(result)


def test_no_usage_on_the_schema_hides_its_tables(pg, layout):
    pg.execute(layout["database"], "ALTER SCHEMA va OWNER TO postgres")
    result = login_check(pg, layout, service_configs={"va": layout["config"]})
    assert result["failed"] is True
    assert result["problems"] == [
        f"va: role '{layout['role']}' lacks USAGE on schema 'va': none of its tables is visible to it"
    ]


def test_a_wrong_password_in_the_config_is_a_login_problem_without_the_password(pg, layout, tmp_path):
    config = tmp_path / "wrong.yml"
    config.write_text(f"storage:\n  username: {layout['role']}\n  password: wrong-{PASSWORD}\n")
    result = login_check(pg, layout, service_configs={"va": str(config)})
    assert result["failed"] is True
    (problem,) = result["problems"]
    assert problem.startswith(f"va: cannot log in as '{layout['role']}' (config file {config})"), problem
    assert "authentication failed" in problem
    assert PASSWORD not in str(result)


def test_bad_input_is_refused_before_any_login(pg, layout):
    result = login_check(pg, layout, service_configs={"kms": layout["config"]})
    assert result["failed"] is True and "name kms, not services of this check" in result["msg"]
    assert result["queries"] == []
