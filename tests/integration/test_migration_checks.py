"""The migrate module records a schema migrated against a tree with nothing pending (``migration_checks``), and
postgres_lamassu_info without the tree reads it: a copy already at the newest version is ``migrated``, not
``copied``. Through Ansible against a real PostgreSQL: check -> apply -> re-run, a down, a role that may not
write the record, and the playbooks (upgrade.yml with the tree, status.yml without it)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from psycopg2 import sql

from tests.harness.ansible import run_module, run_tasks
from tests.harness.fixture import GOOSE_HISTORY, build_legacy
from tests.harness.pgcluster import throwaway_cluster
from tests.integration.test_playbooks import SERVICES as PLAYBOOK_SERVICES
from tests.integration.test_playbooks import latest_report, output, playbook, recap, write_inventory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"
SERVICES = ("va", "kms")
NEW_KMS_VERSION = 20270101000000
CHECKS = "lamassu_migration.migration_checks"


def copy_services(pg, prefix: str, database: str) -> None:
    build_legacy(pg, scale=0.001, services=SERVICES, prefix=prefix)
    copies = run_tasks(
        [{"lamassuiot.postgres.postgres_lamassu_schema": {"database": database, "schemas": list(SERVICES)}}]
        + [
            {
                "lamassuiot.postgres.postgres_db_to_schema": {
                    "source_database": prefix + service,
                    "target_database": database,
                    "target_schema": service,
                }
            }
            for service in SERVICES
        ],
        pg,
    )
    assert not any(r.get("failed") for r in copies.results), copies.output


def tree(tmp_path: Path) -> Path:
    """The release's migrations (nothing pending after the copy) and, for kms, one new migration."""
    root = tmp_path / "migrations"
    for service in SERVICES:
        shutil.copytree(FIXTURES / service, root / service)
    (root / "kms" / f"{NEW_KMS_VERSION}_flag.sql").write_text(
        "-- +goose Up\nALTER TABLE kms_keys ADD COLUMN flag int;\n-- +goose Down\nALTER TABLE kms_keys DROP COLUMN flag;\n"
    )
    return root


def info(pg, prefix: str, database: str, **args) -> dict:
    params = {"database": database, "services": list(SERVICES), "source_prefix": prefix, **args}
    result = run_module("postgres_lamassu_info", params, pg).result
    assert not result.get("failed"), result
    return result


def records(pg, database: str) -> dict:
    if not pg.query(database, f"SELECT to_regclass('{CHECKS}')")[0][0]:
        return {}
    rows = pg.query(database, f"SELECT schema_name, goose_version, newest_version, pending FROM {CHECKS}")
    return {name: rest for name, *rest in rows}


def test_a_migrate_run_with_nothing_left_pending_makes_info_without_the_tree_say_migrated(pg, unique_name, tmp_path):
    prefix, database = f"{unique_name}_", f"{unique_name}_lamassu"
    copy_services(pg, prefix, database)
    root = tree(tmp_path)
    copied = max(GOOSE_HISTORY["va"])
    assert info(pg, prefix, database)["phases"]["copied"] == list(SERVICES)
    args = {"database": database, "services": list(SERVICES), "path": str(root)}

    check = run_module("postgres_lamassu_migrate", args, pg, check=True).result
    assert check["changed"] is True and not check.get("failed"), check
    va = check["results"][0]
    assert va["applied"] == [] and va["migration_check"]["written"] is True
    assert [q for q in va["queries"] if CHECKS.split(".")[1] in q][-1].startswith(
        'INSERT INTO "lamassu_migration"."migration_checks"'
    )
    assert records(pg, database) == {}, "check mode wrote the record"

    first = run_module("postgres_lamassu_migrate", args, pg).result
    assert first["changed"] is True and not first.get("failed"), first
    va, kms = first["results"]
    assert va["applied"] == [] and va["pending"] == [] and va["version_after"] == copied
    assert [q.split(" (")[0] for q in va["queries"]] == [
        'CREATE TABLE IF NOT EXISTS "lamassu_migration"."migration_checks"',
        'INSERT INTO "lamassu_migration"."migration_checks"',
    ]
    assert [m["version"] for m in kms["applied"]] == [NEW_KMS_VERSION]
    assert kms["queries"][-1].startswith('INSERT INTO "lamassu_migration"."migration_checks"')
    assert va["migration_check"]["tree_digest"] != kms["migration_check"]["tree_digest"]
    assert records(pg, database) == {"va": [copied, copied, 0], "kms": [NEW_KMS_VERSION, NEW_KMS_VERSION, 0]}

    without_tree = info(pg, prefix, database)
    assert without_tree["phases"]["migrated"] == list(SERVICES), without_tree["phases"]
    assert without_tree["upgrade_done"] is True
    recorded = without_tree["services"]["va"]["migration_check"]
    assert recorded["goose_version"] == recorded["newest_version"] == copied and recorded["pending"] == 0
    assert recorded["tree_digest"] == va["migration_check"]["tree_digest"] and recorded["checked_at"]

    again = run_module("postgres_lamassu_migrate", args, pg).result
    assert again["changed"] is False and again["queries"] == [], again
    assert all(r["migration_check"]["written"] is False for r in again["results"])

    down = run_module(
        "postgres_lamassu_migrate",
        {"database": database, "schema": "kms", "path": str(root / "kms"), "command": "down"},
        pg,
    ).result
    assert down["changed"] is True and down["migration_check"] is None, down
    after_down = info(pg, prefix, database)
    assert after_down["phases"]["copied"] == ["kms"] and after_down["phases"]["migrated"] == ["va"]
    assert after_down["services"]["kms"]["migration_check"]["goose_version"] == NEW_KMS_VERSION  # stale: ignored
    # With the tree, the tree decides: kms has its migration pending again.
    with_tree = info(pg, prefix, database, migrations_path=str(root))
    assert with_tree["phases"]["copied"] == ["kms"] and with_tree["phases"]["migrated"] == ["va"]

    # A record of another schema of that name (dropped and made again since) does not count, and is replaced.
    pg.execute(database, f"UPDATE {CHECKS} SET schema_oid = 0 WHERE schema_name = 'va'")
    other = info(pg, prefix, database)
    assert other["phases"]["copied"] == list(SERVICES) and other["services"]["va"]["migration_check"] is None
    rewritten = run_module("postgres_lamassu_migrate", {**args, "services": ["va"]}, pg).result
    assert rewritten["changed"] is True and rewritten["results"][0]["migration_check"]["written"] is True
    assert info(pg, prefix, database)["phases"]["migrated"] == ["va"]


def test_a_role_that_may_not_write_the_record_still_migrates_with_a_warning(pg, unique_name, tmp_path):
    prefix, database = f"{unique_name}_", f"{unique_name}_lamassu"
    copy_services(pg, prefix, database)
    root = tree(tmp_path)
    role, password = f"{unique_name}_svc", "svc-secret-pw"
    with contextlib.closing(pg.connect(database)) as conn, conn.cursor() as cur:
        conn.autocommit = True
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)), (password,))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA va TO {}").format(sql.Identifier(role)))
        cur.execute(sql.SQL("GRANT SELECT ON va.goose_db_version TO {}").format(sql.Identifier(role)))
    connection = {**pg.module_defaults(), "login_user": role, "login_password": password}
    args = {"database": database, "schema": "va", "path": str(root / "va")}

    run = run_module("postgres_lamassu_migrate", args, pg, connection=connection)
    result = run.result
    assert not result.get("failed") and result["changed"] is False, result
    assert result["pending"] == [] and result["migration_check"] is None and result["queries"] == []
    assert "recording it in lamassu_migration.migration_checks failed" in run.output, run.output
    assert records(pg, database) == {}
    assert info(pg, prefix, database)["phases"]["copied"] == list(SERVICES)


def test_status_without_the_tree_agrees_with_the_upgrade_that_had_it(tmp_path):
    """The issue: upgrade.yml with the release's tree (nothing to apply) said migrated, status.yml without it
    said copied."""
    root = tmp_path / "migrations"
    for service in PLAYBOOK_SERVICES:
        shutil.copytree(FIXTURES / service, root / service)
    reports = tmp_path / "reports"
    with throwaway_cluster() as cluster:
        build_legacy(cluster, scale=0.001, services=PLAYBOOK_SERVICES)
        inventory = write_inventory(tmp_path / "inventory.json", {"db1": ("dev", cluster, {})}, reports)

        upgraded = playbook("upgrade.yml", inventory, "-e", f"lamassu_migrations_dir={root}")
        assert upgraded.returncode == 0, output(upgraded)
        assert "| phase migrated | 1 |" in latest_report(reports, "upgrade"), output(upgraded)
        assert set(records(cluster, "lamassu")) == set(PLAYBOOK_SERVICES)

        status = playbook("status.yml", inventory)
        assert status.returncode == 0, output(status)
        assert all(counts["changed"] == 0 for counts in recap(status).values())
        report = latest_report(reports, "status")
        assert "| phase migrated | 1 |" in report and "| phase copied | 0 |" in report, report
        for service in PLAYBOOK_SERVICES:
            assert f"| {service} | migrated | {max(GOOSE_HISTORY[service])} |" in report, report
