"""postgres_lamassu_info through Ansible: facts and phase transitions legacy -> copied -> migrated -> cleaned."""

from __future__ import annotations

import contextlib

from psycopg2 import sql

from tests.harness.ansible import run_module, run_tasks
from tests.harness.fixture import GOOSE_HISTORY, build_legacy

MODULE = "postgres_lamassu_info"
SERVICES = ("va", "kms")
NEW_VERSION = 20270101000000


def info(cluster, prefix: str, database: str, check: bool = False, connection: dict | None = None, **args) -> dict:
    params = {"database": database, "services": list(SERVICES), "source_prefix": prefix, **args}
    return run_module(MODULE, params, cluster, check=check, connection=connection).result


def write_migration(directory, service: str, name: str, text: str) -> None:
    folder = directory / service
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_phases_move_from_legacy_to_cleaned(pg, unique_name, tmp_path):
    prefix, database = f"{unique_name}_", f"{unique_name}_lamassu"
    build_legacy(pg, scale=0.001, services=SERVICES, prefix=prefix)

    before = info(pg, prefix, database)
    assert not before.get("failed"), before
    assert before["changed"] is False and before["queries"] == []
    assert before["ready"] is True and before["problems"] == []
    assert before["phases"] == {"legacy": list(SERVICES), "copied": [], "migrated": [], "cleaned": []}
    assert before["server"]["version_num"] >= 130000 and before["server"]["encoding"] == "UTF8"
    assert before["server"]["max_connections"] > 0 and before["server"]["superuser"] is True
    assert before["unified"]["exists"] is False
    for service in SERVICES:
        legacy = before["legacy"][service]
        assert legacy["exists"] and legacy["database"] == prefix + service and legacy["size_bytes"] > 0
        assert legacy["goose_version"] == max(GOOSE_HISTORY[service]) and legacy["frozen"] is False
        assert "goose_db_version" in {t["name"] for t in legacy["tables"]}
        assert before["services"][service]["dsn"]["pgx"].endswith(f"dbname={database} search_path={service}")
    assert before["disk"]["checked"] is True and before["disk"]["needed_bytes"] > 0
    assert info(pg, prefix, database, check=True)["phases"] == before["phases"]

    copies = run_tasks(
        [{"lamassuiot.postgres.postgres_lamassu_schema": {"database": database, "schemas": list(SERVICES)}}]
        + [
            {
                "lamassuiot.postgres.postgres_db_to_schema": {
                    "source_database": prefix + service,
                    "target_database": database,
                    "target_schema": service,
                    "freeze_source": service == "va",
                }
            }
            for service in SERVICES
        ],
        pg,
    )
    assert not any(r.get("failed") for r in copies.results), copies.output
    copied = info(pg, prefix, database)
    assert copied["phases"]["copied"] == list(SERVICES) and copied["ready"] is True
    assert copied["legacy"]["va"]["frozen"] is True and copied["legacy"]["kms"]["frozen"] is False
    for service in SERVICES:
        facts = copied["services"][service]
        assert facts["verified"] is True and facts["rows_copied"] > 0
        assert facts["copied_goose_version"] == facts["schema_goose_version"] == max(GOOSE_HISTORY[service])
        schema = copied["unified"]["schemas"][service]
        assert schema["copy"]["source_database"] == prefix + service and schema["copy"]["duration_s"] >= 0
    assert copied["unified"]["schemas"]["va"]["freeze_recorded"] is True
    assert copied["disk"]["needed_bytes"] == 0

    migrations = tmp_path / "migrations"
    write_migration(
        migrations, "va", f"{NEW_VERSION}_flag.sql", "-- +goose Up\nALTER TABLE va_role ADD COLUMN f int;\n"
    )
    migrated = run_module(
        "postgres_lamassu_migrate", {"database": database, "schema": "va", "path": str(migrations / "va")}, pg
    )
    assert migrated.result.get("changed") is True, migrated.output
    after = info(pg, prefix, database)
    assert after["phases"]["migrated"] == ["va"] and after["phases"]["copied"] == ["kms"]
    assert after["services"]["va"]["schema_goose_version"] == NEW_VERSION

    # With the files: kms has nothing pending, so it counts as migrated too.
    (migrations / "kms").mkdir()
    with_files = info(pg, prefix, database, migrations_path=str(migrations))
    assert with_files["phases"]["migrated"] == list(SERVICES)
    assert with_files["services"]["kms"]["pending_migrations"] == []

    dropped = run_module(
        "postgres_db_to_schema",
        {"source_database": prefix + "kms", "target_database": database, "target_schema": "kms", "drop_source": True},
        pg,
    )
    assert dropped.result.get("changed") is True, dropped.output
    cleaned = info(pg, prefix, database)
    assert cleaned["phases"] == {"legacy": [], "copied": [], "migrated": ["va"], "cleaned": ["kms"]}
    assert cleaned["legacy"]["kms"]["exists"] is False and cleaned["ready"] is True


def test_every_problem_is_reported_at_once(pg, unique_name, tmp_path):
    prefix, database = f"{unique_name}_", f"{unique_name}_lamassu"
    build_legacy(pg, scale=0.001, services=("va",), prefix=prefix)  # kms is missing
    pg.execute("postgres", f'CREATE DATABASE "{database}"')
    pg.execute(database, "CREATE SCHEMA va", "CREATE TABLE va.leftover (id int)")
    migrations = tmp_path / "migrations"
    write_migration(migrations, "va", f"{NEW_VERSION}_rewrite.go", "package migrations\n")
    write_migration(migrations, "va", "20270202000000_ported.go", "package migrations\n")
    write_migration(migrations, "va", "20270202000000_ported.py", "def up(conn):\n    pass\n")

    result = info(pg, prefix, database, migrations_path=str(migrations), disk_margin=1e12)
    assert result["ready"] is False
    problems = result["problems"]
    assert len(problems) == 4, problems
    assert "'va' of database" in problems[0] and "occupied" in problems[0] and "leftover" in problems[0]
    assert f"pending Go migrations without a Python port, which cannot be run: {NEW_VERSION}" in problems[1]
    assert f"legacy database '{prefix}kms' is missing" in problems[2]
    assert "not enough free disk space" in problems[3]
    assert result["services"]["va"]["blocked_go_migrations"] == [NEW_VERSION]

    replaced = info(pg, prefix, database, if_target_exists="replace")
    assert not any("occupied" in p for p in replaced["problems"])
    assert any("occupied" in n for n in replaced["notices"])


def test_a_login_role_without_privileges_is_told_what_it_lacks(pg, unique_name):
    prefix, database = f"{unique_name}_", f"{unique_name}_lamassu"
    build_legacy(pg, scale=0.001, services=("va",), prefix=prefix)
    role, password = f"{unique_name}_low", "low-secret-pw"
    with contextlib.closing(pg.connect()) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD %s").format(sql.Identifier(role)), (password,))
    connection = {**pg.module_defaults(), "login_user": role, "login_password": password}
    result = run_module(
        MODULE, {"database": database, "services": ["va"], "source_prefix": prefix}, pg, connection=connection
    ).result
    assert not result.get("failed"), result
    text = " | ".join(result["problems"])
    assert "no CREATEDB" in text and f"member of 'admin', the owner of legacy database '{prefix}va'" in text
    assert result["server"]["superuser"] is False
    assert password not in str(result)


def test_an_unreachable_server_fails_naming_it(pg):
    connection = {**pg.module_defaults(), "login_port": 1, "connect_timeout": 2}
    result = run_module(MODULE, {}, pg, connection=connection).result
    assert result["failed"] is True
    assert "port 1" in result["msg"] or ":1 " in result["msg"], result["msg"]
