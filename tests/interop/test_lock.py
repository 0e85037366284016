"""goose's Provider with its Postgres session advisory lock and the module, started on one schema at once.

``goose-locker`` (``tests/interop/go/locker``) is goose's Provider with ``lock.NewPostgresSessionLocker``, as
an application embedding goose runs it (goose's CLI takes no lock). Whichever starts first holds the lock while
its slow first migration sleeps; the other waits, then finds nothing pending. No migration runs twice.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from tests.harness.ansible import run_tasks
from tests.interop.goose_cli import dsn

MIGRATE = "lamassuiot.postgres.postgres_lamassu_migrate"
GOOSE_SESSION_LOCK_ID = 4097083626  # goose's lock.DefaultLockID, read from the goose source in the module cache
SLEEP_SECONDS = 4
TREE = {
    "00001_slow.sql": f"-- +goose Up\nSELECT pg_sleep({SLEEP_SECONDS});\nCREATE TABLE devices (id text PRIMARY KEY);\n"
    "-- +goose Down\nDROP TABLE devices;\n",
    "00002_groups.sql": "-- +goose Up\nCREATE TABLE groups (id int PRIMARY KEY);\n-- +goose Down\nDROP TABLE groups;\n",
    "00003_index.sql": "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY groups_id ON groups (id);\n",
}


def write_tree(directory: Path) -> Path:
    directory.mkdir()
    for name, text in TREE.items():
        (directory / name).write_text(text)
    return directory


def wait_for(pg, db: str, statement: str, params=(), timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while pg.query(db, statement, params) == [(0,)]:
        assert time.monotonic() < deadline, f"timed out waiting for: {statement}"
        time.sleep(0.1)


def lock_holders(pg, db: str, lock_id: int) -> str:
    return (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        f"AND ((classid::bigint << 32) | objid::bigint) = {lock_id} "
        f"AND database = (SELECT oid FROM pg_database WHERE datname = '{db}')"
    )


def module_in_background(pg, db: str, path: Path) -> tuple[threading.Thread, dict]:
    """The module's ``up`` in a thread; the dict receives its ``result`` and the time it ``ended``."""
    outcome: dict = {}

    def run() -> None:
        outcome["result"] = run_tasks([{MIGRATE: {"database": db, "schema": "svc", "path": str(path)}}], pg).result
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def versions(pg, db: str, schema: str) -> list[int]:
    return [v for (v,) in pg.query(db, f"SELECT version_id FROM {schema}.goose_db_version ORDER BY id")]


def test_module_waits_while_goose_holds_its_session_lock(pg, db, tmp_path, goose_locker_bin):
    path = write_tree(tmp_path / "tree")
    pg.execute(db, "CREATE SCHEMA svc")
    goose = subprocess.Popen(
        [str(goose_locker_bin), dsn(pg, db, "svc"), str(path), "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(pg, db, lock_holders(pg, db, GOOSE_SESSION_LOCK_ID))
        thread, outcome = module_in_background(pg, db, path)
        # the module is connected and retrying while goose still sleeps in its first migration
        wait_for(
            pg,
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'lamassuiot.postgres'",
            (db,),
        )
        assert goose.poll() is None, "goose ended before the module started waiting"
        goose_output, _ = goose.communicate(timeout=120)
        goose_ended = time.monotonic()
        thread.join(timeout=300)
    finally:
        if goose.poll() is None:
            goose.kill()
    assert goose.returncode == 0, goose_output
    assert goose_output.split() == [word for name in TREE for word in ("up", str(int(name[:5])), name)], goose_output
    result = outcome["result"]
    assert not result.get("failed"), result
    assert result["changed"] is False and result["applied"] == [] and result["version_before"] == 3
    assert outcome["ended"] > goose_ended
    assert versions(pg, db, "svc") == [0, 1, 2, 3]


def test_goose_waits_while_the_module_holds_the_lock(pg, db, tmp_path, goose_locker_bin):
    path = write_tree(tmp_path / "tree")
    thread, outcome = module_in_background(pg, db, path)
    try:
        wait_for(pg, db, lock_holders(pg, db, GOOSE_SESSION_LOCK_ID))
        goose_started = time.monotonic()
        goose = subprocess.run(
            [str(goose_locker_bin), dsn(pg, db, "svc"), str(path), "up"],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        goose_ended = time.monotonic()
    finally:
        thread.join(timeout=300)
    result = outcome["result"]
    assert not result.get("failed"), result
    assert [a["version"] for a in result["applied"]] == [1, 2, 3]
    assert goose.returncode == 0, goose.stdout + goose.stderr
    assert goose.stdout == "", goose.stdout  # nothing left to apply once it got the lock
    assert goose_ended - goose_started >= 1, "goose did not wait for the lock (it retries every second)"
    assert versions(pg, db, "svc") == [0, 1, 2, 3]
    status = subprocess.run(
        [str(goose_locker_bin), dsn(pg, db, "svc"), str(path), "status"], capture_output=True, text=True, check=True
    )
    assert status.stdout.split("\n")[:-1] == [f"status applied {v}" for v in (1, 2, 3)]
