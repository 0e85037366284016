"""The login password appears nowhere: not in stdout or stderr at -vvv, not in results, reports or the server log.

A dedicated throwaway cluster (its log is read, and ``log_statement = all`` is set on it) and a login role with
a password (scram on 127.0.0.1, as the harness's pg_hba wants for every role but ``postgres``). Every module
runs for real, in check mode and with failing connections; ``playbooks/upgrade.yml`` runs with the password as
``lamassu_pg_password``. Whatever the outcome of a run, the password and a wrong one tried must not show up.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from psycopg2 import sql

from tests.harness.ansible import PlaybookRun, run_playbook, run_tasks
from tests.harness.collection import ROOT
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import throwaway_cluster

ROLE = "sec_admin"
SECRET = f"Pw-{uuid.uuid4().hex}"
WRONG = f"Wrong-{uuid.uuid4().hex}"
SECRETS = (SECRET, WRONG)
MODULES = {
    "schema": "lamassuiot.postgres.postgres_lamassu_schema",
    "migrate": "lamassuiot.postgres.postgres_lamassu_migrate",
    "copy": "lamassuiot.postgres.postgres_db_to_schema",
}
MIGRATION = "-- +goose Up\nCREATE TABLE secrets_probe (id int);\n-- +goose Down\nDROP TABLE secrets_probe;\n"
BROKEN = "-- +goose Up\nINSERT INTO no_such_table VALUES (1);\n"


@pytest.fixture(scope="module")
def cluster():
    """A cluster of its own: every statement logged, connections logged, a superuser login role with a password."""
    with throwaway_cluster() as cluster:
        if cluster.external:
            pytest.skip("reads the server log: needs a throwaway cluster, not LAMASSU_TEST_DSN")
        conn = cluster.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SET log_statement = 'none'")  # the test's own CREATE ROLE ... PASSWORD stays out
                cur.execute(
                    sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                        sql.Identifier(ROLE), sql.Literal(SECRET)
                    )
                )
                cur.execute("ALTER SYSTEM SET log_statement = 'all'")
                cur.execute("ALTER SYSTEM SET log_connections = 'on'")
                cur.execute("ALTER SYSTEM SET log_min_error_statement = 'info'")
                cur.execute("SELECT pg_reload_conf()")
        finally:
            conn.close()
        build_legacy(cluster, scale=0.0001, services=("ca", "kms"))
        yield cluster


def connection(cluster, password: str = SECRET, **extra) -> dict:
    return {
        "login_host": cluster.host,
        "login_port": cluster.port,
        "login_user": ROLE,
        "login_password": password,
        **extra,
    }


def assert_nowhere(cluster, run: PlaybookRun | None = None, texts: tuple[str, ...] = (), files: tuple[Path, ...] = ()):
    places = {"server log": Path(cluster.log_file).read_text(errors="replace")}
    if run is not None:
        places.update(stdout=run.stdout, stderr=run.stderr, results=json.dumps(run.results))
    places.update({f"text {i}": text for i, text in enumerate(texts)})
    places.update({str(path): path.read_text(errors="replace") for path in files})
    leaks = [f"{secret[:6]}... in {where}" for where, text in places.items() for secret in SECRETS if secret in text]
    assert not leaks, leaks


def test_server_log_is_read(cluster):
    """The assertions below mean something: the log receives every statement (a probe shows up in it)."""
    probe = f"probe_{uuid.uuid4().hex}"
    cluster.execute("postgres", f"SELECT '{probe}'")
    assert probe in Path(cluster.log_file).read_text(errors="replace")


def test_modules_at_vvv_real_and_check_mode(cluster, tmp_path):
    (tmp_path / "00001_probe.sql").write_text(MIGRATION)
    target = f"sec_{uuid.uuid4().hex[:8]}"
    tasks = [
        {MODULES["schema"]: {"database": target, "schemas": ["ca", "kms", "svc"]}},
        {MODULES["migrate"]: {"database": target, "schema": "svc", "path": str(tmp_path)}},
        {MODULES["copy"]: {"source_database": "ca", "target_database": target}},
    ]
    check = run_tasks(tasks, connection=connection(cluster), check=True, diff=True, verbosity=3)
    real = run_tasks(tasks, connection=connection(cluster), diff=True, verbosity=3)
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in real.output  # -vvv shows the invocation, password masked
    assert not real.results[0].get("failed") and not real.results[1].get("failed"), real.results
    for run in (check, real):
        assert_nowhere(cluster, run)
    # the dsn handed to services has the host part, never the password
    copied = real.results[2]
    if not copied.get("failed"):
        assert ROLE in copied["dsn"]["libpq"]


def test_failing_connections_and_statements(cluster, tmp_path):
    (tmp_path / "00001_broken.sql").write_text(BROKEN)
    target = f"sec_{uuid.uuid4().hex[:8]}"
    cluster.execute("postgres", f'CREATE DATABASE "{target}"')
    cases = [
        (connection(cluster, WRONG), {MODULES["schema"]: {"database": target}}),
        (connection(cluster, WRONG), {MODULES["migrate"]: {"database": target, "path": str(tmp_path)}}),
        (connection(cluster, WRONG), {MODULES["copy"]: {"source_database": "kms", "target_database": target}}),
        (connection(cluster), {MODULES["migrate"]: {"database": f"{target}_missing", "path": str(tmp_path)}}),
        (connection(cluster, ssl_mode="require"), {MODULES["schema"]: {"database": target}}),
        (connection(cluster, login_port=1), {MODULES["copy"]: {"source_database": "kms", "target_database": target}}),
        # a password also given in connect_params (libpq keyword) is scrubbed as well
        (
            connection(cluster, WRONG, connect_params={"password": WRONG}),
            {MODULES["schema"]: {"database": target}},
        ),
        # the connection works; a migration statement fails
        (connection(cluster), {MODULES["migrate"]: {"database": target, "schema": "svc", "path": str(tmp_path)}}),
    ]
    # one playbook per mode: each task carries its own connection options (they override module_defaults)
    tasks = [{module: {**args, **conn_options} for module, args in task.items()} for conn_options, task in cases]
    real = run_tasks(tasks, connection={}, verbosity=3)
    assert all(result.get("failed") is True for result in real.results), real.results
    assert_nowhere(cluster, real)
    check = run_tasks(tasks, connection={}, check=True, verbosity=3)
    assert_nowhere(cluster, check)


def test_upgrade_playbook_at_vvv(cluster, tmp_path):
    """The password given as ``lamassu_pg_password``: absent from the output, the reports and the server log,
    whatever the outcome of the playbook (it is not the subject of this test)."""
    playbook = ROOT / "playbooks" / "upgrade.yml"
    if not playbook.exists():
        pytest.skip("playbooks/upgrade.yml does not exist yet")
    reports = tmp_path / "reports"
    inventory = {
        "lamassu_postgres": {
            "hosts": {
                "pg1": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "lamassu_pg_host": cluster.host,
                    "lamassu_pg_port": cluster.port,
                    "lamassu_pg_user": ROLE,
                    "lamassu_pg_password": SECRET,
                    "lamassu_pg_database": f"sec_{uuid.uuid4().hex[:8]}",
                    "lamassu_services": ["ca", "kms"],
                    "lamassu_report_dir": str(reports),
                    "lamassu_freeze_sources": False,
                }
            }
        }
    }
    inventory_file = tmp_path / "inventory.json"
    inventory_file.write_text(json.dumps(inventory))
    proc = run_playbook(playbook, "-i", str(inventory_file), "-vvv")
    report_files = tuple(p for p in reports.rglob("*") if p.is_file()) if reports.exists() else ()
    assert_nowhere(cluster, texts=(proc.stdout, proc.stderr), files=report_files)
