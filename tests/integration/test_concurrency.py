"""Two (or three) ansible-playbook processes at once against one server.

Each run either ends with the correct state or fails with a clear "already in progress" message; no duplicate
rows, no migration applied twice, no advisory lock left. Overlap is forced, not hoped for: a slow first
migration keeps the first run inside the migration lock; for the schema module a test session holds a lock on
``pg_namespace`` of the target database until both runs wait for it, so they read and write at the same time.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import SERVICES
from tests.integration.test_migrate_faults import (
    advisory_locks,
    kill_tree,
    module_backends,
    start_playbook,
    wait_for,
)

SERVICES_SCHEMAS = list(SERVICES)
IN_PROGRESS = "already in progress"


def finish(process_and_file) -> dict:
    process, result_file = process_and_file
    try:
        process.communicate(timeout=300)
    finally:
        kill_tree(process)
    return json.loads(result_file.read_text())


def ok_or_in_progress(result: dict) -> bool:
    return not result.get("failed") or IN_PROGRESS in result.get("msg", "")


def write_migrations(path: Path, table: str) -> Path:
    path.mkdir()
    (path / "00001_slow.sql").write_text(
        f"-- +goose Up\nSELECT pg_sleep(2);\nCREATE TABLE {table} (id int PRIMARY KEY);\n"
        f"-- +goose Down\nDROP TABLE {table};\n"
    )
    for version in (2, 3):
        (path / f"0000{version}_rows.sql").write_text(
            f"-- +goose Up\nINSERT INTO {table} VALUES ({version});\n-- +goose Down\nDELETE FROM {table} WHERE id = {version};\n"
        )
    return path


def test_migrate_runs_at_once_apply_each_migration_once(pg, db, tmp_path):
    """Two runs on one schema and one on another schema of the same database (goose's lock is per database)."""
    first_dir = write_migrations(tmp_path / "first", "things")
    other_dir = write_migrations(tmp_path / "other", "others")
    runs = [
        start_playbook(pg, tmp_path, {"database": db, "schema": "first", "path": str(first_dir)}),
        start_playbook(pg, tmp_path, {"database": db, "schema": "first", "path": str(first_dir)}),
        start_playbook(pg, tmp_path, {"database": db, "schema": "other", "path": str(other_dir)}),
    ]
    results = [finish(run) for run in runs]
    assert all(ok_or_in_progress(r) for r in results), results
    applied_first = sorted(a["version"] for r in results[:2] for a in r.get("applied", []))
    assert applied_first == [1, 2, 3], results
    for schema, table in (("first", "things"), ("other", "others")):
        rows = pg.query(db, f"SELECT version_id FROM {schema}.goose_db_version ORDER BY id")
        assert rows == [(0,), (1,), (2,), (3,)]
        assert pg.query(db, f"SELECT id FROM {schema}.{table} ORDER BY id") == [(2,), (3,)]
    wait_for(lambda: not module_backends(pg, db), "the module's sessions to end")
    assert advisory_locks(pg, db) == []


def test_schema_runs_at_once_end_correct_or_in_progress(pg, db, tmp_path):
    blocker = pg.connect(db, autocommit=False)
    runs = []
    try:
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE pg_catalog.pg_namespace IN ACCESS EXCLUSIVE MODE")
        args = {"database": db, "schemas": SERVICES_SCHEMAS}
        runs = [
            start_playbook(pg, tmp_path, args, module="lamassuiot.postgres.postgres_lamassu_schema")
            for _attempt in range(2)
        ]
        # asked from another database: a new session of the target database would wait on the lock too
        waiting = (
            "SELECT count(*) FROM pg_locks WHERE relation = 'pg_catalog.pg_namespace'::regclass AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = %s)"
        )
        sessions = (
            "SELECT count(DISTINCT client_port) FROM pg_stat_activity WHERE datname = 'postgres'"
            " AND application_name = 'lamassuiot.postgres'"
        )
        # both runs connected (each keeps a session in the maintenance database) and one at least held up here
        wait_for(
            lambda: pg.query("postgres", waiting, (db,))[0][0] >= 1 and pg.query("postgres", sessions)[0][0] >= 2,
            "both runs to be under way",
        )
    finally:
        blocker.rollback()
        blocker.close()
    results = [finish(run) for run in runs]
    assert all(ok_or_in_progress(r) for r in results), [r.get("msg") for r in results]
    assert any(not r.get("failed") for r in results)
    created = sorted(s["name"] for r in results if not r.get("failed") for s in r["schemas"] if s["state"] == "created")
    assert created == sorted(SERVICES_SCHEMAS), results
    present = pg.query(db, "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) ORDER BY 1", (SERVICES_SCHEMAS,))
    assert [name for (name,) in present] == sorted(SERVICES_SCHEMAS)


def test_schema_runs_at_once_create_one_database(pg, tmp_path):
    database = f"conc_{uuid.uuid4().hex[:10]}"
    args = {"database": database, "schemas": ["ca", "kms"]}
    try:
        runs = [
            start_playbook(pg, tmp_path, args, module="lamassuiot.postgres.postgres_lamassu_schema")
            for _attempt in range(2)
        ]
        results = [finish(run) for run in runs]
        assert all(ok_or_in_progress(r) for r in results), [r.get("msg") for r in results]
        assert [r["database"]["created"] for r in results if not r.get("failed")].count(True) == 1, results
        assert pg.query("postgres", "SELECT count(*) FROM pg_database WHERE datname = %s", (database,)) == [(1,)]
    finally:
        with contextlib.suppress(Exception):
            pg.execute("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
