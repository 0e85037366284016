"""The login password appears nowhere: not in stdout or stderr at -vvv, not in results, reports or the server log.

A dedicated throwaway cluster (its log is read, and ``log_statement = all`` is set on it) and a login role with
a password (scram on 127.0.0.1, as the harness's pg_hba wants for every role but ``postgres``). Every module
runs for real, in check mode and with failing connections; every playbook runs with the password as
``lamassu_pg_password``, the cleanup dumping the legacy databases (``pg_dump`` reads it from a password file that
must not outlive the dumps). Whatever the outcome of a run, the password and a wrong one tried must not show up.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from tests.harness.ansible import PlaybookRun, run_playbook, run_tasks, write_inventory
from tests.harness.collection import ROOT
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import throwaway_cluster

ROLE = "sec_admin"
SECRET = f"Pw-{uuid.uuid4().hex}"
WRONG = f"Wrong-{uuid.uuid4().hex}"
# What a .pgpass file must escape: the playbook test logs in with it.
SPECIAL = f"Pw:{uuid.uuid4().hex}\\x"
SECRETS = (SECRET, WRONG, SPECIAL)
MODULES = {
    "schema": "lamassuiot.postgres.postgres_lamassu_schema",
    "migrate": "lamassuiot.postgres.postgres_lamassu_migrate",
    "copy": "lamassuiot.postgres.postgres_db_to_schema",
}
MIGRATION = "-- +goose Up\nCREATE TABLE secrets_probe (id int);\n-- +goose Down\nDROP TABLE secrets_probe;\n"
BROKEN = "-- +goose Up\nINSERT INTO no_such_table VALUES (1);\n"


@contextlib.contextmanager
def password_cluster(services: tuple[str, ...] = ("ca", "kms"), password: str = SECRET):
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
                        sql.Identifier(ROLE), sql.Literal(password)
                    )
                )
                cur.execute("ALTER SYSTEM SET log_statement = 'all'")
                cur.execute("ALTER SYSTEM SET log_connections = 'on'")
                cur.execute("ALTER SYSTEM SET log_min_error_statement = 'info'")
                cur.execute("SELECT pg_reload_conf()")
        finally:
            conn.close()
        build_legacy(cluster, scale=0.0001, services=services)
        yield cluster


@pytest.fixture(scope="module")
def cluster():
    with password_cluster() as cluster:
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
    # as given, and as JSON writes it (a backslash doubled)
    forms = {secret: (secret, json.dumps(secret)[1:-1]) for secret in SECRETS}
    leaks = [
        f"{secret[:6]}... in {where}"
        for where, text in places.items()
        for secret in SECRETS
        if any(form in text for form in forms[secret])
    ]
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
    # the dsn handed to services has the host part and the service's own role, never the password
    copied = real.results[2]
    if not copied.get("failed"):
        assert f"host={cluster.host} " in copied["dsn"]["libpq"]
        assert f"user={copied['service_role']} " in copied["dsn"]["libpq"]


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


def files_holding(directory: Path, secret: str, exclude: tuple[Path, ...] = ()) -> list[str]:
    """Files under ``directory`` whose bytes hold ``secret`` as given, as JSON or .pgpass write it (unreadable
    ones are skipped)."""
    pgpass = secret.replace("\\", "\\\\").replace(":", "\\:")
    forms = {form.encode() for form in (secret, json.dumps(secret)[1:-1], pgpass)}
    found = []
    # os.walk skips what vanishes while it looks: other test workers' Ansible runs come and go in ~/.ansible/tmp.
    for root, _dirs, names in os.walk(directory):
        for path in (Path(root, name) for name in names):
            try:
                if path.is_file() and path not in exclude and any(form in path.read_bytes() for form in forms):
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_every_playbook_at_vvv(tmp_path):
    """Every playbook at ``-vvv``, the password (with a ':' and a '\\') given as ``lamassu_pg_password`` of a role
    the server asks for it (scram on loopback): upgrade, status, rollback, upgrade again, then cleanup in check
    mode, with a failing dump and with real dumps. The password is absent from the output, the reports and the
    server log; the dumps, which only the password file of ``pg_dump`` makes possible, exist; no password file is
    left behind."""
    services = ("ca", "kms")
    with password_cluster(services, SPECIAL) as cluster:
        with pytest.raises(psycopg2.OperationalError):  # the role cannot log in without its password
            psycopg2.connect(host=cluster.host, port=cluster.port, user=ROLE, dbname="postgres", password="")
        reports, dumps, tmp = tmp_path / "reports", tmp_path / "dumps", tmp_path / "tmp"
        tmp.mkdir()
        inventory = write_inventory(
            tmp_path / "inventory.json",
            cluster,
            host="pg1",
            lamassu_pg_user=ROLE,
            lamassu_pg_password=SPECIAL,
            lamassu_services=list(services),
            lamassu_report_dir=str(reports),
        )
        # The managed host's temporary files (tempfile) go to a directory the test can search.
        env = {"TMPDIR": str(tmp)}

        def run(name: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
            proc = run_playbook(ROOT / "playbooks" / name, "-i", str(inventory), "-vvv", *args, env=env)
            report_files = tuple(p for p in reports.rglob("*") if p.is_file()) if reports.exists() else ()
            assert_nowhere(cluster, texts=(proc.stdout, proc.stderr), files=report_files)
            assert (proc.returncode == 0) is ok, proc.stdout[-6000:] + proc.stderr[-3000:]
            assert not list(tmp.glob("lamassu-pgpass-*")), "a password file was left behind"
            assert not files_holding(tmp_path, SPECIAL, exclude=(inventory,))
            return proc

        def cleanup(
            *extra: str, ok: bool = True, pg_dump: str = cluster.tool("pg_dump")
        ) -> subprocess.CompletedProcess:
            options = {
                "legacy_cleanup_confirm": True,
                "legacy_cleanup_dump_dir": str(dumps),
                "legacy_cleanup_pg_dump": pg_dump,
            }
            return run("cleanup.yml", "-e", json.dumps(options), *extra, ok=ok)

        run("upgrade.yml")
        run("status.yml")
        run("rollback.yml")
        run("upgrade.yml")
        cleanup("--check")
        assert not dumps.exists()

        # A failing dump: the database is kept, the run fails, the password file is removed all the same.
        failed = cleanup(ok=False, pg_dump="false")
        assert f"{tmp}/lamassu-pgpass-" in failed.stdout, "the dump did not get a password file"
        assert "Kept the legacy databases whose dump failed" in failed.stdout
        assert {"ca", "kms"} <= {name for (name,) in cluster.query("postgres", "SELECT datname FROM pg_database")}

        cleaned = cleanup()
        assert f"{tmp}/lamassu-pgpass-" in cleaned.stdout
        assert sorted(p.name for p in dumps.iterdir()) == ["ca.dump", "kms.dump"]
        assert all(p.stat().st_size > 0 for p in dumps.iterdir())
        assert not {"ca", "kms"} & {name for (name,) in cluster.query("postgres", "SELECT datname FROM pg_database")}
        assert not files_holding(Path.home() / ".ansible" / "tmp", SPECIAL)
