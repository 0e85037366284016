"""postgres_lamassu_migrate interrupted: the playbook SIGKILLed, or its server backend terminated, mid-run.

A directory of migrations that each create a table, fill it, sleep, then add a column: a migration applied
completely has its table with every row and the column, and its version row; one not applied has neither.
After the interruption: no migration is half there, the version table has no duplicate, no advisory lock is
left once the backend is gone, and a re-run applies the rest, each exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.harness.ansible import ACTION_GROUP, ansible_env, run_module
from tests.harness.collection import ROOT

MODULE = "lamassuiot.postgres.postgres_lamassu_migrate"
SCHEMA = "svc"
VERSIONS = list(range(1, 6))
ROWS = 20
APPLICATION = "lamassuiot.postgres"
WAIT = 60.0  # upper bound of every wait below; never an assertion on time


def write_migrations(path: Path) -> None:
    path.mkdir()
    for version in VERSIONS:
        (path / f"{version:05d}_step_{version}.sql").write_text(
            "-- +goose Up\n"
            f"CREATE TABLE step_{version} (id int PRIMARY KEY);\n"
            f"INSERT INTO step_{version} SELECT generate_series(1, {ROWS});\n"
            "SELECT pg_sleep(0.5);\n"
            f"ALTER TABLE step_{version} ADD COLUMN done boolean NOT NULL DEFAULT true;\n"
            "-- +goose Down\n"
            f"DROP TABLE step_{version};\n"
        )


def start_playbook(pg, tmp_path: Path, args: dict, module: str = MODULE) -> tuple[subprocess.Popen, Path]:
    """ansible-playbook in its own session; returns the process and the file its task result is written to."""
    token = uuid.uuid4().hex[:6]
    out = tmp_path / f"result-{token}.json"
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {ACTION_GROUP: pg.module_defaults()},
            "tasks": [
                {module: args, "register": "outcome", "ignore_errors": True},
                {"ansible.builtin.copy": {"content": "{{ outcome | to_json }}", "dest": str(out), "mode": "0600"}},
            ],
        }
    ]
    playbook = tmp_path / f"play-{token}.yml"
    playbook.write_text(json.dumps(play))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook)]
    process = subprocess.Popen(
        [*command, "-i", "localhost,", "-c", "local"],
        cwd=ROOT,
        env=ansible_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return process, out


def process_tree(root: int) -> list[int]:
    """``root`` and every descendant, from /proc (Ansible's workers call setsid: a process group misses them)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the playbook's process group and every descendant (the module too), as a CI runner's kill does."""
    tree = process_tree(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def applied_rows(pg, db: str) -> list[int]:
    exists = pg.query(db, "SELECT to_regclass('svc.goose_db_version') IS NOT NULL")[0][0]
    if not exists:
        return []
    return [v for (v,) in pg.query(db, "SELECT version_id FROM svc.goose_db_version WHERE version_id > 0 ORDER BY id")]


def sleeping_backend(pg, db: str) -> int | None:
    rows = pg.query(
        "postgres",
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s AND state = 'active' "
        "AND query LIKE 'SELECT pg_sleep%%'",
        (db, APPLICATION),
    )
    return rows[0][0] if rows else None


def module_backends(pg, db: str) -> list[int]:
    rows = pg.query(
        "postgres", "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s", (db, APPLICATION)
    )
    return [pid for (pid,) in rows]


def advisory_locks(pg, db: str) -> list[tuple]:
    return pg.query(
        db,
        "SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )


def migration_states(pg, db: str) -> dict[int, str]:
    """Per version: 'complete' (table, every row, the column), 'absent' (no table), else what is half there."""
    states = {}
    for version in VERSIONS:
        table = f"step_{version}"
        if not pg.query(db, "SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{table}",))[0][0]:
            states[version] = "absent"
            continue
        columns = {
            c
            for (c,) in pg.query(
                db,
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
                (f"{SCHEMA}.{table}",),
            )
        }
        rows = pg.query(db, f"SELECT count(*) FROM {SCHEMA}.{table}")[0][0]
        states[version] = "complete" if columns == {"id", "done"} and rows == ROWS else f"half: {columns} {rows}"
    return states


def assert_consistent(pg, db: str) -> list[int]:
    """Each migration all there with its row, or neither; no duplicate rows. Returns the applied versions."""
    applied = applied_rows(pg, db)
    assert len(applied) == len(set(applied)), f"duplicate version rows: {applied}"
    states = migration_states(pg, db)
    for version, state in states.items():
        expected = "complete" if version in applied else "absent"
        assert state == expected, (
            f"migration {version}: {state}, version row {'present' if version in applied else 'absent'}"
        )
    return applied


def assert_no_leftovers(pg, db: str) -> None:
    """The module's backends end once their client is gone (terminated if not); then no advisory lock remains."""
    deadline = time.monotonic() + 10
    while module_backends(pg, db) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in module_backends(pg, db):  # still there: end it as an operator would
        pg.query("postgres", "SELECT pg_terminate_backend(%s)", (pid,))
    wait_for(lambda: not module_backends(pg, db), "the module's backends to end")
    assert advisory_locks(pg, db) == []


@pytest.mark.parametrize("applied_before_kill", [2])
def test_sigkill_mid_run_then_rerun_applies_the_rest_once(pg, db, tmp_path, applied_before_kill):
    path = tmp_path / "migrations"
    write_migrations(path)
    args = {"database": db, "schema": SCHEMA, "path": str(path)}
    process, _result_file = start_playbook(pg, tmp_path, args)
    try:
        wait_for(
            lambda: len(applied_rows(pg, db)) >= applied_before_kill and sleeping_backend(pg, db),
            "a migration in its sleep",
        )
        in_flight = len(applied_rows(pg, db)) + 1
        kill_tree(process)
    finally:
        kill_tree(process)
        process.communicate()
    assert process.returncode == -signal.SIGKILL

    assert_no_leftovers(pg, db)
    applied = assert_consistent(pg, db)
    assert applied == VERSIONS[: len(applied)]
    assert in_flight not in applied, "the migration killed in its transaction was committed"

    rerun = run_module("postgres_lamassu_migrate", args, pg).result
    assert not rerun.get("failed"), rerun
    assert [a["version"] for a in rerun["applied"]] == VERSIONS[len(applied) :]
    assert assert_consistent(pg, db) == VERSIONS
    assert advisory_locks(pg, db) == []


def test_backend_terminated_mid_run_fails_clearly_then_rerun_completes(pg, db, tmp_path):
    path = tmp_path / "migrations"
    write_migrations(path)
    args = {"database": db, "schema": SCHEMA, "path": str(path)}
    process, result_file = start_playbook(pg, tmp_path, args)
    try:
        pid = wait_for(lambda: len(applied_rows(pg, db)) >= 1 and sleeping_backend(pg, db), "a migration in its sleep")
        in_flight = len(applied_rows(pg, db)) + 1
        assert pg.query("postgres", "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
        process.communicate(timeout=WAIT)
    finally:
        kill_tree(process)
    result = json.loads(result_file.read_text())
    assert result.get("failed") is True, result
    message = result["msg"]
    assert f"Migration {in_flight}" in message and f"{in_flight:05d}_step_{in_flight}.sql" in message, message
    assert "terminating connection" in message or "server closed the connection" in message, message
    assert [a["version"] for a in result.get("applied", [])] == list(range(1, in_flight)), result

    assert_no_leftovers(pg, db)
    applied = assert_consistent(pg, db)
    assert in_flight not in applied
    rerun = run_module("postgres_lamassu_migrate", args, pg).result
    assert not rerun.get("failed"), rerun
    assert [a["version"] for a in rerun["applied"]] == VERSIONS[len(applied) :]
    assert assert_consistent(pg, db) == VERSIONS
    assert advisory_locks(pg, db) == []
