"""postgres_db_to_schema interrupted at known points (kill, terminated backends, server restart), run twice at once,
or disturbed before verification: a re-run completes the job and nothing is left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from psycopg2 import sql

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.hooks import PAUSE_AT_ENV, PAUSE_FILE_ENV
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.phases import PAUSE_POINTS, PHASES
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.request import APPLICATION, staging_name
from tests.harness.ansible import ACTION_GROUP, ansible_env, run_module
from tests.harness.catalog import data_checksums, describe_schema, diff_descriptions
from tests.harness.collection import ROOT
from tests.harness.fixture import build_legacy

MODULE = "postgres_db_to_schema"
WAIT_SECONDS = 90


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def query(cluster, database: str, statement, params=None) -> list[tuple]:
    with contextlib.closing(cluster.connect(database)) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def copy_case(pg):
    """A legacy ``ca`` database, an empty target database and the module arguments."""
    prefix = unique("ir") + "_"
    build_legacy(pg, scale=0.001, services=["ca"], prefix=prefix)
    target = unique("lamassu")
    query(pg, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
    return {"source_database": prefix + "ca", "target_database": target, "target_schema": "ca"}


class PausedRun:
    """``ansible-playbook`` running the module in the background until it reaches a pause point."""

    def __init__(self, cluster, args: dict, phase: str):
        self.tmp = Path(tempfile.mkdtemp(prefix="lamassu-pause-"))
        self.pause_file = self.tmp / "paused"
        task = {
            f"lamassuiot.postgres.{MODULE}": args,
            "register": "copy",
            "ignore_errors": True,
            "environment": {PAUSE_AT_ENV: phase, PAUSE_FILE_ENV: str(self.pause_file)},
        }
        save = {"ansible.builtin.copy": {"content": "{{ copy | to_json }}", "dest": str(self.tmp / "result.json")}}
        play = [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "module_defaults": {ACTION_GROUP: cluster.module_defaults()},
                "tasks": [task, save],
            }
        ]
        playbook = self.tmp / "play.yml"
        playbook.write_text(json.dumps(play))
        command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook), "-i", "localhost,"]
        self.proc = subprocess.Popen(
            [*command, "-c", "local"],
            env=ansible_env(),
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_paused(self) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not self.pause_file.exists():
            assert self.proc.poll() is None, "the run ended before reaching its pause point"
            assert time.monotonic() < deadline, "the run never reached its pause point"
            time.sleep(0.05)

    def resume(self) -> dict:
        self.pause_file.unlink(missing_ok=True)
        self.proc.wait(timeout=WAIT_SECONDS)
        return json.loads((self.tmp / "result.json").read_text())

    def kill(self) -> None:
        """SIGKILL the module process (its pid is in the pause file) and ansible-playbook's process group."""
        module_pid = int(self.pause_file.read_text().split()[0])
        os.kill(module_pid, signal.SIGKILL)
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=WAIT_SECONDS)
        self.pause_file.unlink(missing_ok=True)


def wait_module_sessions_gone(cluster) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while query(
        cluster, "postgres", "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s", (APPLICATION + "%",)
    ):
        assert time.monotonic() < deadline, "the killed run's sessions did not end"
        time.sleep(0.05)


def schemas(cluster, database: str) -> set[str]:
    return {name for (name,) in query(cluster, database, "SELECT nspname FROM pg_namespace")}


def assert_completed(cluster, args: dict) -> None:
    """A normal re-run publishes a faithful copy and leaves no staging schema."""
    result = run_module(MODULE, args, cluster).result
    assert result["changed"] is True and not result.get("failed"), result.get("msg")
    target = args["target_database"]
    assert staging_name("ca") not in schemas(cluster, target)
    with (
        contextlib.closing(cluster.connect(args["source_database"])) as src,
        contextlib.closing(cluster.connect(target)) as tgt,
    ):
        differences = diff_descriptions(describe_schema(src, "public"), describe_schema(tgt, "ca"))
        assert not differences, "\n".join(differences[:20])
        assert data_checksums(src, "public") == data_checksums(tgt, "ca")
    again = run_module(MODULE, args, cluster).result
    assert again["changed"] is False and not again.get("failed")


def worker_sessions(cluster, database: str) -> list[tuple]:
    """(pid, state, query) of the copy workers connected to ``database``."""
    return query(
        cluster,
        "postgres",
        "SELECT pid, state, query FROM pg_stat_activity WHERE datname = %s AND application_name LIKE %s",
        (database, APPLICATION + "% worker %"),
    )


def assert_paused_where_asked(cluster, case: dict, phase: str) -> None:
    """The run is really where ``phase`` says: in the middle of the largest table's COPY, or of its index builds."""
    target = case["target_database"]
    if phase == "copy":
        deadline = time.monotonic() + WAIT_SECONDS
        while True:  # the server works through the rows it was sent while the module waits
            progress = query(
                cluster,
                target,
                """SELECT p.bytes_processed, p.tuples_processed, p.relid::regclass::text FROM pg_stat_progress_copy p
                   JOIN pg_stat_activity a USING (pid) WHERE p.datname = %s AND p.command = 'COPY FROM'
                   AND a.application_name LIKE %s""",
                (target, APPLICATION + "%"),
            )
            assert len(progress) == 1, progress
            if progress[0][0] > 0 or time.monotonic() > deadline:  # bytes received from the module
                break
            time.sleep(0.05)
        total = query(cluster, case["source_database"], "SELECT count(*) FROM certificates")[0][0]
        received, tuples, relation = progress[0]
        assert relation == f"{staging_name('ca')}.certificates"
        assert received > 0 and tuples < total, (received, tuples, total)
    elif phase == "index":
        states = [(state, text.split()[:2]) for _pid, state, text in worker_sessions(cluster, target)]
        assert len(states) == 1 and states[0][0] == "idle in transaction", states
        assert states[0][1] in (["CREATE", "UNIQUE"], ["CREATE", "INDEX"], ["ALTER", "TABLE"]), states


# The pause points of the offline copy (the online move's apply: tests/integration/test_online_move.py).
@pytest.mark.parametrize("phase", [point.name for point in PAUSE_POINTS if point.phase in PHASES])
def test_killed_run_is_completed_by_the_next_run(pg, phase):
    prefix = unique("ik") + "_"
    # Large enough that the certificates table takes several buffers of the COPY stream.
    build_legacy(pg, scale=0.005, services=["ca"], prefix=prefix)
    case = {"source_database": prefix + "ca", "target_database": unique("lamassu"), "target_schema": "ca"}
    query(pg, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(case["target_database"])))
    with contextlib.closing(pg.connect(case["source_database"])) as conn:
        source_before = (describe_schema(conn, "public"), data_checksums(conn, "public"))
    run = PausedRun(pg, {**case, "jobs": 1}, phase)
    run.wait_paused()
    try:
        assert_paused_where_asked(pg, case, phase)
    finally:
        run.kill()
    wait_module_sessions_gone(pg)
    # Nothing is visible under the target name, whatever the phase (the publish transaction did not commit).
    assert "ca" not in schemas(pg, case["target_database"])
    with contextlib.closing(pg.connect(case["source_database"])) as conn:
        assert (describe_schema(conn, "public"), data_checksums(conn, "public")) == source_before
    assert_completed(pg, case)


@pytest.mark.parametrize("phase", ["copy", "index", "verify"])
def test_terminated_backends_fail_the_run_and_the_next_run_completes(pg, copy_case, phase):
    run = PausedRun(pg, copy_case, phase)
    run.wait_paused()
    query(
        pg,
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
        (APPLICATION + "%",),
    )
    result = run.resume()
    assert result["failed"] is True
    assert "ca" not in schemas(pg, copy_case["target_database"])
    assert_completed(pg, copy_case)


def test_server_restart_fails_the_run_and_the_next_run_completes(pg, copy_case):
    run = PausedRun(pg, copy_case, "copy")  # in the middle of the certificates table's COPY
    run.wait_paused()
    pg.stop("immediate")
    pg.start()
    result = run.resume()
    assert result["failed"] is True
    assert "ca" not in schemas(pg, copy_case["target_database"])
    assert_completed(pg, copy_case)


def test_second_run_on_the_same_target_is_refused_while_the_first_runs(pg, copy_case):
    first = PausedRun(pg, copy_case, "data")
    first.wait_paused()
    try:
        second = run_module(MODULE, copy_case, pg).result
    finally:
        result = first.resume()
    assert second["failed"] is True and "already in progress" in second["msg"], second.get("msg")
    assert result["changed"] is True and not result.get("failed"), result.get("msg")
    assert staging_name("ca") not in schemas(pg, copy_case["target_database"])


@pytest.mark.parametrize(
    ("verify", "change", "expected"),
    [
        ("count", "DELETE FROM {} WHERE ctid = (SELECT min(ctid) FROM {})", "rows in the source"),
        ("checksum", "UPDATE {} SET status = status || 'x' WHERE ctid = (SELECT min(ctid) FROM {})", "checksums"),
    ],
)
def test_verification_mismatch_fails_names_the_table_and_publishes_nothing(pg, copy_case, verify, change, expected):
    source_before = data_checksums(pg.connect(copy_case["source_database"]), "public")
    run = PausedRun(pg, {**copy_case, "jobs": 1, "verify": verify}, "verify")
    run.wait_paused()
    table = sql.Identifier(staging_name("ca"), "certificates")  # the largest table is copied first
    query(pg, copy_case["target_database"], sql.SQL(change).format(table, table))
    result = run.resume()
    assert result["failed"] is True
    assert "table certificates" in result["msg"] and expected in result["msg"], result["msg"]
    assert not {"ca", staging_name("ca")} & schemas(pg, copy_case["target_database"])
    assert data_checksums(pg.connect(copy_case["source_database"]), "public") == source_before
