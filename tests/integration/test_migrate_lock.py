"""The migration lock is goose's session advisory lock: a goose run holding it keeps the module waiting."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import OperationFailed
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.lock import MigrationLock
from ansible_collections.lamassuiot.postgres.plugins.module_utils.locks import GOOSE_LOCK_ID
from ansible_collections.lamassuiot.postgres.plugins.module_utils.session import Session
from tests.harness.ansible import run_module

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"


def advisory_locks(pg, db: str) -> list[tuple]:
    return pg.query(
        db,
        "SELECT pid, (classid::bigint << 32) | objid::bigint FROM pg_locks WHERE locktype = 'advisory' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 2",
    )


def test_lock_held_elsewhere_fails_after_bounded_wait_and_releases(pg, db):
    goose = pg.connect(db)  # stands for a goose binary run with its Postgres session locker
    ours = pg.connect(db)
    try:
        with goose.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (GOOSE_LOCK_ID,))
            assert cur.fetchone() == (True,)
        lock = MigrationLock(Session(ours, []), db, timeout=0.3, interval=0.05)
        with pytest.raises(OperationFailed) as failure:
            lock.acquire()
        message = str(failure.value)
        assert "Another migration is in progress" in message and str(GOOSE_LOCK_ID) in message
        assert f"pid {goose.get_backend_pid()}" in message
        assert [row[1] for row in advisory_locks(pg, db)] == [GOOSE_LOCK_ID]  # ours released what it took

        with goose.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (GOOSE_LOCK_ID,))
        with MigrationLock(Session(ours, []), db, timeout=0.3, interval=0.05):
            held = advisory_locks(pg, db)
            assert {row[1] for row in held} == {GOOSE_LOCK_ID, 5887940537704921958}
            assert {row[0] for row in held} == {ours.get_backend_pid()}
        assert advisory_locks(pg, db) == []
    finally:
        goose.close()
        ours.close()


def test_module_waits_for_a_goose_run_holding_the_lock(pg, db, tmp_path):
    path = tmp_path / "va"
    shutil.copytree(FIXTURES / "va", path)
    goose = pg.connect(db)
    with goose.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (GOOSE_LOCK_ID,))
    outcome: dict = {}

    def play() -> None:
        outcome["result"] = run_module(
            "postgres_lamassu_migrate", {"database": db, "schema": "va", "path": str(path)}, pg
        ).result

    thread = threading.Thread(target=play)
    thread.start()
    try:
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'lamassuiot.postgres'"
        )
        deadline = time.monotonic() + 60
        while pg.query("postgres", waiting, (db,)) == [(0,)] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # it keeps retrying while the lock is held
        assert pg.query(db, "SELECT to_regclass('va.goose_db_version')") == [(None,)]
    finally:
        goose.close()  # a session lock dies with its session, as when goose exits
        thread.join()
    result = outcome["result"]
    assert not result.get("failed"), result
    assert result["changed"] is True and result["version_after"] == 1
