"""goose's Provider with its Postgres session advisory lock and the module, started on one schema at once.

``goose-locker`` (``tests/interop/go/locker``) is goose's Provider with ``lock.NewPostgresSessionLocker``, as
an application embedding goose runs it (goose's CLI takes no lock). Whichever starts first holds the lock while
its first migration waits until the other one has connected, and two seconds more; the other waits for the
lock, then finds nothing pending. No migration runs twice.
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
MODULE_APPLICATION = "lamassuiot.postgres"
GOOSE_APPLICATION = "goose-locker"


def slow_first_migration(waits_for: str) -> str:
    """Holds its runner inside migration 1 until a session named ``waits_for`` has connected (a busy machine
    can take many seconds to start ansible-playbook), then two seconds more while that one asks for the lock."""
    return f"""-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    FOR i IN 1..1200 LOOP
        PERFORM pg_stat_clear_snapshot();  -- pg_stat_activity is otherwise read once per transaction
        EXIT WHEN EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = '{waits_for}');
        PERFORM pg_sleep(0.1);
    END LOOP;
    PERFORM pg_sleep(2);
END
$$;
-- +goose StatementEnd
CREATE TABLE devices (id text PRIMARY KEY);
-- +goose Down
DROP TABLE devices;
"""


def write_tree(directory: Path, waits_for: str) -> Path:
    directory.mkdir()
    (directory / "00001_slow.sql").write_text(slow_first_migration(waits_for))
    (directory / "00002_groups.sql").write_text(
        "-- +goose Up\nCREATE TABLE groups (id int PRIMARY KEY);\n-- +goose Down\nDROP TABLE groups;\n"
    )
    (directory / "00003_index.sql").write_text(
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY groups_id ON groups (id);\n"
    )
    return directory


def wait_for(pg, db: str, statement: str, params=(), timeout: float = 120) -> None:
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
    path = write_tree(tmp_path / "tree", waits_for=MODULE_APPLICATION)
    pg.execute(db, "CREATE SCHEMA svc")
    goose = subprocess.Popen(
        [str(goose_locker_bin), dsn(pg, db, "svc", GOOSE_APPLICATION), str(path), "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(pg, db, lock_holders(pg, db, GOOSE_SESSION_LOCK_ID))
        thread, outcome = module_in_background(pg, db, path)
        # the module is connected and retrying while goose still sleeps in its first migration
        wait_for(
            pg, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (MODULE_APPLICATION,)
        )
        assert goose.poll() is None, "goose ended before the module started waiting"
        goose_output = goose.communicate(timeout=120)[0]
        goose_ended = time.monotonic()
        thread.join(timeout=300)
    finally:
        if goose.poll() is None:
            goose.kill()
    assert goose.returncode == 0, goose_output
    names = sorted(p.name for p in path.iterdir())
    assert goose_output.split() == [word for name in names for word in ("up", str(int(name[:5])), name)], goose_output
    result = outcome["result"]
    assert not result.get("failed"), result
    assert result["changed"] is False and result["applied"] == [] and result["version_before"] == 3
    assert outcome["ended"] > goose_ended
    assert versions(pg, db, "svc") == [0, 1, 2, 3]


def test_goose_waits_while_the_module_holds_the_lock(pg, db, tmp_path, goose_locker_bin):
    path = write_tree(tmp_path / "tree", waits_for=GOOSE_APPLICATION)
    thread, outcome = module_in_background(pg, db, path)
    try:
        wait_for(pg, db, lock_holders(pg, db, GOOSE_SESSION_LOCK_ID))
        goose_started = time.monotonic()
        goose = subprocess.run(
            [str(goose_locker_bin), dsn(pg, db, "svc", GOOSE_APPLICATION), str(path), "up"],
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
