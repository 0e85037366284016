"""The db_to_schema role copies the databases above db_to_schema_async_threshold_mb in the background, with a
progress line per copy while they run; the smaller ones stay normal tasks, without a progress line."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import uuid

import pytest
from psycopg2 import sql

from tests.harness.ansible import run_local_play
from tests.harness.fixture import build_legacy

SERVICES = ["va", "kms"]
# db_to_schema's progress line: host, service, tables and MB done of all, seconds, phase.
PROGRESS = re.compile(r"^localhost: (va|kms): (\d+)/(\d+) tables, ([\d.]+)/([\d.]+) MB, \d+ s \((\w+)\)$", re.MULTILINE)
STARTING = re.compile(r"^localhost: (va|kms): starting, \d+ s$", re.MULTILINE)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def create_database(cluster, name: str) -> None:
    with contextlib.closing(cluster.connect()) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def copy_play(prefix: str, target: str, **role_vars) -> dict:
    """The preflight facts (sizes of the legacy databases) as playbooks/upgrade.yml has them, then the role, then
    a line with the items, changed and table counts of the registered copies."""
    return {
        "tasks": [
            {
                "name": "Read the facts",
                "lamassuiot.postgres.postgres_lamassu_info": {
                    "database": target,
                    "services": SERVICES,
                    "source_prefix": prefix,
                },
                "register": "preflight_info",
            },
            {
                "name": "Copy",
                "ansible.builtin.include_role": {"name": "lamassuiot.postgres.db_to_schema"},
                "vars": {
                    "db_to_schema_services": SERVICES,
                    "db_to_schema_database": target,
                    "db_to_schema_source_prefix": prefix,
                    **role_vars,
                },
            },
            {
                "name": "Show the results",
                "ansible.builtin.debug": {
                    "msg": "RESULTS {{ db_to_schema_copies.results | map(attribute='schema') | join(',') }} "
                    "{{ db_to_schema_copies.results | map(attribute='changed') | join(',') }} "
                    "{{ db_to_schema_copies.results | map(attribute='tables') | map('length') | join(',') }}"
                },
            },
        ]
    }


@contextlib.contextmanager
def held_at_final(path: str, seconds: float):
    """Each copy that reaches the final phase waits there ``seconds`` (the copy's pause hook, hooks.py)."""
    done = threading.Event()

    def release() -> None:
        while not done.is_set():
            if os.path.exists(path):
                time.sleep(seconds)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            time.sleep(0.05)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield {"LAMASSU_DBCOPY_PAUSE_AT": "final", "LAMASSU_DBCOPY_PAUSE_FILE": path}
    finally:
        done.set()
        thread.join()


def failing_play(prefix: str, target: str, **role_vars) -> dict:
    """``copy_play`` with the role in a block whose rescue shows the failure as the playbooks note it."""
    play = copy_play(prefix, target, **role_vars)
    facts, role, show = play["tasks"]
    rescue = {
        "name": "Show the failure",
        "ansible.builtin.debug": {
            "msg": "FAILURE {{ ansible_failed_task.name }} | {{ ansible_failed_result | "
            "lamassuiot.postgres.failure_message }} | {{ db_to_schema_copies.results | selectattr('failed', 'defined') "
            "| selectattr('failed') | map(attribute='schema') | join(',') }}"
        },
    }
    return {"tasks": [facts, {"block": [role, show], "rescue": [rescue]}]}


def results_line(output: str) -> str:
    return re.search(r'"msg": "(RESULTS .*)"', output).group(1)


@pytest.fixture
def legacy(pg):
    prefix = unique("pg") + "_"
    build_legacy(pg, scale=0.001, services=SERVICES, prefix=prefix)
    return prefix


def test_copies_above_the_threshold_run_in_the_background_with_progress_lines(pg, legacy, tmp_path):
    target = unique("lamassu")
    progress_dir = tmp_path / "progress"
    # Held long enough at the final phase that a busy machine still polls each copy while it runs.
    with held_at_final(str(tmp_path / "pause"), 10) as hold:
        background = run_local_play(
            tmp_path,
            pg,
            copy_play(
                legacy,
                target,
                db_to_schema_async_threshold_mb=0,
                db_to_schema_progress_interval=1,
                db_to_schema_progress_dir=str(progress_dir),
            ),
            env=hold,
        )
    output = background.stdout + background.stderr
    assert background.returncode == 0, output
    assert "TASK [lamassuiot.postgres.db_to_schema : Wait for the copies in the background, printing" in output
    lines = PROGRESS.findall(output)
    assert {line[0] for line in lines} == set(SERVICES), output
    for _service, done, total, mb_done, mb_total, _phase in lines:
        assert int(done) <= int(total) and float(mb_done) <= float(mb_total), lines
    # Held in the final phase, each copy shows all its tables done.
    final = [line for line in lines if line[5] == "final"]
    assert {line[0] for line in final} == set(SERVICES), lines
    assert all(line[1] == line[2] != "0" and line[3] == line[4] for line in final), final
    assert "va: copied" in output and "kms: copied" in output, output
    assert list(progress_dir.iterdir()) == [], "the progress files are removed once the copies ended"

    # The same copy in the foreground on another target: the same results, no progress line.
    other = unique("lamassu")
    foreground = run_local_play(tmp_path, pg, copy_play(legacy, other))
    out = foreground.stdout + foreground.stderr
    assert foreground.returncode == 0, out
    assert not PROGRESS.search(out) and not STARTING.search(out), out
    assert "printing their progress" not in out, out
    assert results_line(out) == results_line(output)
    assert results_line(out).startswith("RESULTS va,kms True,True "), results_line(out)


def test_a_failed_copy_in_the_background_fails_the_wait_naming_it(pg, legacy, tmp_path):
    target = unique("lamassu")
    create_database(pg, target)
    with contextlib.closing(pg.connect(target)) as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA kms; CREATE TABLE kms.notes (id int); INSERT INTO kms.notes VALUES (1)")
        conn.commit()
    progress_dir = tmp_path / "progress"
    run = run_local_play(
        tmp_path,
        pg,
        failing_play(
            legacy,
            target,
            db_to_schema_async_threshold_mb=0,
            db_to_schema_progress_interval=1,
            db_to_schema_progress_dir=str(progress_dir),
        ),
    )
    output = run.stdout + run.stderr
    failure = re.search(r'"msg": "FAILURE (.*)"', output)
    assert failure, output
    task, message, failed = failure.group(1).split(" | ")
    assert task == "Wait for the copies in the background, printing their progress", output
    assert message.startswith("kms: ") and "Tables holding rows: notes" in message, message
    assert failed == "kms", "the registered results name the failed copy, for the report"
    assert "va: copied" not in output, "the summaries are not reached"
    assert list(progress_dir.iterdir()) == [], "the progress files are removed also after a failure"
    with contextlib.closing(pg.connect(target)) as conn, conn.cursor() as cur:
        cur.execute("SELECT nspname FROM pg_namespace WHERE nspname IN ('va', 'kms') ORDER BY 1")
        assert cur.fetchall() == [("kms",), ("va",)]
        cur.execute("SELECT count(*) FROM va.goose_db_version")
        assert cur.fetchone()[0] > 0, "the other copy in the background went on and was published"


def test_the_wait_renews_the_lease_of_the_run_on_the_server_wide_lock(pg, legacy, tmp_path):
    """A lease of 6 s renewed every 2 s by the progress loop: one holder all along, its lease end moving on."""
    owner = {"run_id": "20261202T073303Z", "controller_host": "ctl", "controller_pid": 4242}
    lock = "lamassuiot.postgres.postgres_lamassu_lock"
    play = copy_play(
        legacy,
        unique("lamassu"),
        db_to_schema_async_threshold_mb=0,
        db_to_schema_progress_interval=1,
        db_to_schema_renew_lock={**pg.module_defaults(), **owner, "lease": 6},
    )
    play["tasks"].insert(0, {"name": "Take the lock", lock: {**owner, "lease": 60}})
    seen: set[tuple[int, str]] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.update(
                pg.query(
                    "postgres",
                    "SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE 'lamassu-lock %'",
                )
            )
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        with held_at_final(str(tmp_path / "pause"), 10) as hold:
            watcher.start()
            run = run_local_play(tmp_path, pg, play, env=hold)
    finally:
        stop.set()
        watcher.join()
        pg.query(
            "postgres",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'lamassu-lock %'",
        )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "had run out" not in output, output
    assert len({pid for pid, _name in seen}) == 1, seen
    assert len({name.split(" ")[2] for _pid, name in seen}) >= 3, seen
