"""Legacy databases made by goose-lamassu itself, then ``playbooks/upgrade.yml``: every schema equals its source.

Lamassu's release goose-lamassu migrates the six databases (its SQL and its compiled-in Go migrations) on a
cluster of their own (the databases carry the services' fixed names); a few rows go into every table it made;
the upgrade playbook copies and migrates them into one database; each schema must then equal its source
database (structure and data checksums), and goose must find nothing pending in it. While the release module
cannot be fetched (see ``build/go/peers/goose-lamassu/failed.txt``), ``goose-lamassu-fixtures`` stands in: the
same command line and goose calls over ``tests/fixtures/migrations``, its Go migrations compiled in.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg2 import sql

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import SERVICES
from tests.harness.ansible import run_playbook
from tests.harness.catalog import data_checksums, describe_schema, diff_descriptions
from tests.harness.collection import ROOT
from tests.harness.gopeers import load_peers, module_dir
from tests.harness.pgcluster import Cluster, throwaway_cluster
from tests.interop.goose_cli import GooseCLI, dsn

FIXTURE_MIGRATIONS = ROOT / "tests" / "fixtures" / "migrations"
ROWS_PER_TABLE = 3
# A value for a NOT NULL column without a default, by type; {n} is the row number.
VALUES = {
    "text": "'row-{n}'",
    "character varying": "'row-{n}'",
    "integer": "{n}",
    "bigint": "{n}",
    "smallint": "{n}",
    "numeric": "{n}",
    "double precision": "{n}",
    "boolean": "false",
    "jsonb": "'{{}}'",
    "json": "'{{}}'",
    "uuid": "gen_random_uuid()",
    "timestamp without time zone": "now()",
    "timestamp with time zone": "now()",
    "bytea": "'\\x00'",
    "ARRAY": "'{{}}'",
}


@pytest.fixture
def cluster():
    with throwaway_cluster() as own:
        if own.external:
            pytest.skip("the legacy databases carry the services' fixed names, which an external server may hold")
        yield own


def build_legacy_with(tool: list[str], cluster: Cluster) -> None:
    """Each service's database, migrated by the tool as an operator runs goose-lamassu."""
    for service in SERVICES:
        cluster.execute("postgres", f'CREATE DATABASE "{service}"')
        proc = subprocess.run(
            [*tool, dsn(cluster, service), "up"], capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode == 0, f"{service}: {proc.stdout}{proc.stderr}"


def fill_rows(cluster: Cluster, database: str) -> list[str]:
    """A few rows in every table of ``public`` a generic row fits (NOT NULL columns get a value of their type)."""
    filled = []
    with contextlib.closing(cluster.connect(database, autocommit=False)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE' AND table_name <> 'goose_db_version' ORDER BY 1"
        )
        for (table,) in cur.fetchall():
            cur.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = %s AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO' "
                "ORDER BY ordinal_position",
                (table,),
            )
            columns = cur.fetchall()
            if any(data_type not in VALUES for _name, data_type in columns):
                continue
            cur.execute("SAVEPOINT fill")
            try:
                for n in range(1, ROWS_PER_TABLE + 1):
                    values = sql.SQL(", ").join(sql.SQL(VALUES[data_type].format(n=n)) for _name, data_type in columns)
                    names = sql.SQL(", ").join(sql.Identifier(name) for name, _type in columns)
                    cur.execute(
                        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(sql.Identifier(table), names, values)
                        if columns
                        else sql.SQL("INSERT INTO {} DEFAULT VALUES").format(sql.Identifier(table))
                    )
            except Exception:  # a check or foreign key a generic row cannot meet: the table stays empty
                cur.execute("ROLLBACK TO SAVEPOINT fill")
            else:
                filled.append(table)
        conn.commit()
    return filled


def upgrade(cluster: Cluster, tmp_path: Path, migrations: Path, database: str) -> subprocess.CompletedProcess:
    inventory = tmp_path / "inventory.json"
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "lamassu_pg_host": cluster.host,
        "lamassu_pg_port": cluster.port,
        "lamassu_pg_database": database,
        "lamassu_report_dir": str(tmp_path / "reports"),
        "lamassu_migrations_dir": str(migrations),
    }
    inventory.write_text(json.dumps({"lamassu_postgres": {"children": {"dev": {"hosts": {"db1": host}}}}}))
    return run_playbook(ROOT / "playbooks" / "upgrade.yml", "-i", str(inventory))


def assert_schemas_equal_sources(cluster: Cluster, database: str) -> None:
    for service in SERVICES:
        with (
            contextlib.closing(cluster.connect(service)) as source,
            contextlib.closing(cluster.connect(database)) as target,
        ):
            differences = diff_descriptions(
                {"structure": describe_schema(source, "public"), "data": data_checksums(source, "public")},
                {"structure": describe_schema(target, service), "data": data_checksums(target, service)},
                (service, f"{database}.{service}"),
            )
        assert not differences, "\n".join(differences[:40])


def legacy_upgrade(cluster: Cluster, tmp_path: Path, tool: list[str], migrations: Path, database: str) -> None:
    build_legacy_with(tool, cluster)
    for service in SERVICES:
        assert fill_rows(cluster, service), f"no table of {service} took a generic row"
    run = upgrade(cluster, tmp_path, migrations, database)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert_schemas_equal_sources(cluster, database)


def assert_goose_finds_nothing_pending(goose_bin: Path, cluster: Cluster, database: str, migrations: Path) -> None:
    for service in SERVICES:
        status = GooseCLI(goose_bin, cluster, database, service, migrations / service, "goose_db_version").status()
        files = sorted(p.name for p in (migrations / service).iterdir() if p.suffix in (".sql", ".go"))
        assert (status.pending, sorted(status.applied)) == ([], files), service


def test_fixture_trees_migrated_by_goose_upgrade_faithfully(cluster, tmp_path, goose_bin, goose_lamassu_fixtures_bin):
    """The stand-in: goose itself (its older API, Go migrations compiled in) made the legacy databases."""
    tool = [str(goose_lamassu_fixtures_bin), "-dir", str(FIXTURE_MIGRATIONS)]
    legacy_upgrade(cluster, tmp_path, tool, FIXTURE_MIGRATIONS, "lamassu")
    assert_goose_finds_nothing_pending(goose_bin, cluster, "lamassu", FIXTURE_MIGRATIONS)


def test_release_goose_lamassu_databases_upgrade_faithfully(cluster, tmp_path, goose_bin, goose_lamassu_bin):
    migrations = module_dir(load_peers()["goose-lamassu"]) / "migrations"
    legacy_upgrade(cluster, tmp_path, [str(goose_lamassu_bin)], migrations, "lamassu")
    assert_goose_finds_nothing_pending(goose_bin, cluster, "lamassu", migrations)


def test_schema_aware_goose_lamassu_finds_nothing_pending(
    cluster, tmp_path, goose_lamassu_bin, goose_lamassu_schema_bin
):
    """feat/schema-db's goose-lamassu hard-codes database pki and takes the schema from search_path=."""
    migrations = module_dir(load_peers()["goose-lamassu"]) / "migrations"
    legacy_upgrade(cluster, tmp_path, [str(goose_lamassu_bin)], migrations, "pki")
    for service in SERVICES:
        proc = subprocess.run(
            [str(goose_lamassu_schema_bin), dsn(cluster, "pki", service), "status"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "Applied At" in output and "Pending" not in output, f"{service}:\n{output}"
