"""The ``dsn`` a module returns reaches the schema it names, whatever the name: capitals, spaces, quotes."""

from __future__ import annotations

import contextlib

import psycopg2
import pytest

from tests.harness.ansible import run_module


@pytest.mark.parametrize("schema", ["Ca Schema", 'it\'s "odd"'])
def test_the_returned_libpq_dsn_lands_in_the_copied_schema(pg, db, schema):
    source = f"{db}_src"
    pg.execute("postgres", f'CREATE DATABASE "{source}"')
    try:
        pg.execute(source, "CREATE TABLE probe (id int)", "INSERT INTO probe VALUES (42)")
        result = run_module(
            "postgres_db_to_schema", {"source_database": source, "target_database": db, "target_schema": schema}, pg
        ).result
        assert result["changed"] is True and not result.get("failed"), result.get("msg")
        with contextlib.closing(psycopg2.connect(result["dsn"]["libpq"])) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_schema(), (SELECT id FROM probe)")
            assert cur.fetchone() == (schema, 42)
        # The pgx form has the same conninfo grammar and sends search_path as a run-time parameter, which the
        # server applies as set_config does.
        pgx = psycopg2.extensions.parse_dsn(result["dsn"]["pgx"].replace(" search_path=", " application_name="))
        search_path = pgx.pop("application_name")
        with contextlib.closing(psycopg2.connect(**pgx)) as conn, conn.cursor() as cur:
            cur.execute("SELECT set_config('search_path', %s, false), current_schema()", (search_path,))
            assert cur.fetchone()[1] == schema
    finally:
        pg.execute("postgres", f'DROP DATABASE IF EXISTS "{source}" WITH (FORCE)')
