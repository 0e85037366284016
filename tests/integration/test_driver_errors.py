"""A driver error in a read (no USAGE on the schema) fails the module with a message, never a traceback."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from psycopg2 import sql

from tests.harness.ansible import run_module

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"


def test_migrate_by_a_role_without_usage_on_the_schema_names_schema_and_permission(pg, db, unique_name, tmp_path):
    path = tmp_path / "ca"
    shutil.copytree(FIXTURES / "ca", path)
    applied = run_module("postgres_lamassu_migrate", {"database": db, "schema": "ca", "path": str(path)}, pg).result
    assert not applied.get("failed"), applied

    role, password = f"{unique_name}_nousage", "no-usage-secret-pw"
    with contextlib.closing(pg.connect(db)) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)), (password,))
        cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), sql.Identifier(role)))
    connection = {**pg.module_defaults(), "login_user": role, "login_password": password}
    run = run_module(
        "postgres_lamassu_migrate",
        {"database": db, "schema": "ca", "path": str(path), "command": "status"},
        pg,
        connection=connection,
    )
    result = run.result
    assert result["failed"] is True, result
    message = result["msg"]
    assert "MODULE FAILURE" not in message and "Traceback" not in message, message
    assert "module_stderr" not in result and "Traceback" not in str(result.get("exception", "")), result
    assert "permission denied for schema ca" in message, message
    assert f"user {role!r}" in message and f"database {db!r}" in message and str(pg.port) in message, message
    assert password not in run.output and password not in str(result)
