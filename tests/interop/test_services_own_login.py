"""After ``upgrade.yml``, Lamassu's services work with their own non-superuser login, as a real installation has it.

A login role (``lamassu_app``, SCRAM) owns the legacy databases and created every table in them; Ansible logs in as
``postgres`` or as a role that is no superuser (CREATEDB and membership in the services' role, as
docs/upgrade-guide.md allows). After the upgrade, with the defaults:

* each service's own config file (``files``) or the Helm values (``helm``) still names ``lamassu_app``;
* ``lamassu_app`` logs in with its password to the unified database (``lamassu`` or ``pki``), its schema alone on
  the search path, reads every table and can write (a rolled-back insert); a table made by a migration of the run
  belongs to it too;
* the real goose CLI, run as ``lamassu_app`` with the schema's DSN, finds nothing pending and can run ``up``;
* status.yml without the tree agrees (no login problem);
* a privilege the services lack stops the upgrade before any service starts, named by the login check, and
  status.yml names one revoked afterwards.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import yaml

from tests.harness.ansible import run_playbook
from tests.harness.collection import ROOT
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import Cluster, throwaway_cluster

SERVICES = ("ca", "va", "kms")
APP, APP_PASSWORD = "lamassu_app", "app-Secret-9"
DBA, DBA_PASSWORD = "ansible_dba", "dba-Secret-7"
NEW_VERSION = 20270303000000
GOOSE_VERSION = 20270404000000


@contextlib.contextmanager
def installation():
    """A cluster of its own (the legacy databases carry the services' fixed names) with the services' role owning
    them, and the non-superuser login of Ansible."""
    with throwaway_cluster() as cluster:
        if cluster.external:
            pytest.skip("the legacy databases carry the services' fixed names, which an external server may hold")
        build_legacy(cluster, scale=0.0005, services=SERVICES, app_role=APP, app_password=APP_PASSWORD)
        cluster.execute("postgres", f"CREATE ROLE {DBA} LOGIN CREATEDB PASSWORD '{DBA_PASSWORD}' IN ROLE {APP}")
        yield cluster


def write_tree(directory: Path) -> Path:
    """One new migration per service; va's makes a table, which must belong to the services' role."""
    for service in SERVICES:
        (directory / service).mkdir(parents=True)
        (directory / service / f"{NEW_VERSION}_noop.sql").write_text("-- +goose Up\nSELECT 1;\n")
    (directory / "va" / f"{NEW_VERSION}_noop.sql").write_text(
        "-- +goose Up\nCREATE TABLE va_notes (id int PRIMARY KEY, note text);\n-- +goose Down\nDROP TABLE va_notes;\n"
    )
    return directory


def write_configs(directory: Path) -> dict[str, str]:
    configs = {}
    for service in SERVICES:
        path = directory / service / "config.yml"
        path.parent.mkdir(parents=True)
        path.write_text(
            "logs:\n  level: info\nstorage:\n  provider: postgres\n  hostname: legacy-db\n  port: 5432\n"
            f'  username: {APP}\n  password: "{APP_PASSWORD}"\n'
        )
        configs[service] = str(path)
    return configs


def inventory(tmp_path: Path, cluster: Cluster, login: str, database: str, target: str, **extra) -> Path:
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "lamassu_pg_host": cluster.host,
        "lamassu_pg_port": cluster.port,
        "lamassu_pg_database": database,
        "lamassu_services": list(SERVICES),
        "lamassu_report_dir": str(tmp_path / "reports"),
        "cutover_target": target,
        "cutover_helm_values_file": str(tmp_path / "helm-values.yml"),
        **extra,
    }
    if login == DBA:
        host |= {"lamassu_pg_user": DBA, "lamassu_pg_password": DBA_PASSWORD}
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"lamassu_postgres": {"hosts": {"db1": host}}}))
    return path


def playbook(name: str, hosts: Path, *args: str) -> subprocess.CompletedProcess:
    return run_playbook(ROOT / "playbooks" / name, "-i", str(hosts), *args)


def shown(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout[-8000:] + proc.stderr[-3000:]


def as_service(cluster: Cluster, database: str, schema: str):
    return psycopg2.connect(
        host=cluster.host,
        port=cluster.port,
        user=APP,
        password=APP_PASSWORD,
        dbname=database,
        options=f"-c search_path={schema}",
    )


def goose(binary: Path, cluster: Cluster, database: str, schema: str, directory: Path, *args: str) -> str:
    """The goose CLI as the services' role, with the DSN a schema-aware Lamassu uses."""
    dsn = (
        f"host={cluster.host} port={cluster.port} user={APP} password={APP_PASSWORD} dbname={database} "
        f"sslmode=disable search_path={schema}"
    )
    command = [str(binary), "-dir", str(directory), "-no-color", "postgres", dsn, *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"goose {' '.join(args)} as {APP} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("login", "database", "target"),
    [("postgres", "lamassu", "files"), (DBA, "pki", "helm"), (DBA, "lamassu", "files")],
)
def test_the_services_work_with_their_own_login_after_the_upgrade(goose_bin, tmp_path, login, database, target):
    tree = write_tree(tmp_path / "migrations")
    configs = write_configs(tmp_path / "etc")
    with installation() as cluster:
        hosts = inventory(tmp_path, cluster, login, database, target, cutover_service_configs=configs)
        upgraded = playbook("upgrade.yml", hosts, "-e", f"lamassu_migrations_dir={tree}")
        assert upgraded.returncode == 0, shown(upgraded)
        assert "Log in as each service and check that it can work on its schema" in upgraded.stdout
        assert f"'{APP}'" in upgraded.stdout or f'"{APP}"' in upgraded.stdout, "preflight shows the services' role"

        if target == "files":
            for service, path in configs.items():
                storage = yaml.safe_load(Path(path).read_text())["storage"]
                assert storage["username"] == APP and storage["password"] == APP_PASSWORD, service
                assert storage["database"] == database and storage["hostname"] == "legacy-db", storage
        else:
            values = yaml.safe_load((tmp_path / "helm-values.yml").read_text())
            assert "username" not in values["postgres"] and values["postgres"]["database"] == database, values
            assert "helm upgrade lamassu lamassu/lamassu" in upgraded.stdout, shown(upgraded)

        for service in SERVICES:
            with contextlib.closing(as_service(cluster, database, service)) as conn, conn.cursor() as cur:
                cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (service,))
                tables = [name for (name,) in cur.fetchall()]
                assert "goose_db_version" in tables, (service, tables)
                for table in tables:
                    cur.execute(f'SELECT count(*) FROM "{table}"')  # unqualified: found through search_path
                    cur.execute(f'LOCK TABLE "{table}" IN ROW EXCLUSIVE MODE')
                cur.execute("INSERT INTO goose_db_version (version_id, is_applied) VALUES (1, true)")
                conn.rollback()
        with contextlib.closing(as_service(cluster, database, "va")) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO va_notes VALUES (1, 'made by a migration of the run')")
            conn.rollback()

        for service in SERVICES:
            status = goose(goose_bin, cluster, database, service, tree / service, "status")
            assert "Pending" not in status, status
        (tree / "va" / f"{GOOSE_VERSION}_more.sql").write_text(
            "-- +goose Up\nCREATE TABLE va_more (id int);\n-- +goose Down\nDROP TABLE va_more;\n"
        )
        goose(goose_bin, cluster, database, "va", tree / "va", "up")
        owner = cluster.query(
            database, "SELECT tableowner FROM pg_tables WHERE schemaname = 'va' AND tablename = 'va_more'"
        )
        assert owner == [(APP,)]

        status = playbook("status.yml", hosts)
        assert status.returncode == 0, shown(status)


def test_a_privilege_the_services_lack_stops_the_upgrade_before_they_start(tmp_path):
    configs = write_configs(tmp_path / "etc")
    with installation() as cluster:
        # The owner gave up UPDATE on its own table: the copy keeps the ACL exactly as the source has it.
        cluster.execute("ca", f"SET ROLE {APP}", f"REVOKE UPDATE ON certificates FROM {APP}")
        hosts = inventory(tmp_path, cluster, "postgres", "lamassu", "files", cutover_service_configs=configs)
        stopped = playbook("upgrade.yml", hosts, "-e", "lamassu_start_services=true")
        assert stopped.returncode != 0, shown(stopped)
        assert f"ca: role '{APP}' lacks UPDATE on table ca.certificates" in stopped.stdout, shown(stopped)
        assert APP_PASSWORD not in stopped.stdout + stopped.stderr
        assert "Start the services, when asked" not in stopped.stdout.split("Log in as each service", 1)[1]

        cluster.execute("lamassu", f"GRANT UPDATE ON ca.certificates TO {APP}")
        cluster.execute("postgres", f"REVOKE CREATE ON DATABASE lamassu FROM {APP}")
        status = playbook("status.yml", hosts)
        assert status.returncode != 0, shown(status)
        assert "lacks CREATE on database 'lamassu'" in status.stdout, shown(status)
        assert APP_PASSWORD not in status.stdout + status.stderr
