"""The playbooks end to end on throwaway clusters: rollout, failure stop, idempotence, status, rollback, cleanup."""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from tests.harness.ansible import run_playbook
from tests.harness.collection import ROOT
from tests.harness.fixture import GOOSE_HISTORY, build_legacy
from tests.harness.pgcluster import Cluster, throwaway_cluster

PLAYBOOKS = ROOT / "playbooks"
# Three of the six services keep the runs short; the demo moves all six.
SERVICES = ("ca", "va", "kms")
NEW_VERSION = 20270101000000
NEW_VA_VERSION = 20270202000000
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def write_inventory(path: Path, hosts: dict[str, tuple[str, Cluster, dict]], report_dir: Path) -> Path:
    """``hosts``: name -> (environment group, cluster, extra host variables)."""
    groups: dict[str, dict] = {}
    for name, (group, cluster, extra) in hosts.items():
        groups.setdefault(group, {"hosts": {}})["hosts"][name] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "lamassu_pg_host": cluster.host,
            "lamassu_pg_port": cluster.port,
            "lamassu_report_dir": str(report_dir),
            "lamassu_services": list(SERVICES),
            **extra,
        }
    path.write_text(json.dumps({"lamassu_postgres": {"children": groups}}, indent=2))
    return path


def playbook(name: str, inventory: Path, *args: str) -> subprocess.CompletedProcess:
    return run_playbook(PLAYBOOKS / name, "-i", str(inventory), *args)


def recap(proc: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    return {
        host: {"ok": int(ok), "changed": int(changed), "unreachable": int(unreachable), "failed": int(failed)}
        for host, ok, changed, unreachable, failed in RECAP.findall(proc.stdout)
    }


def output(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout[-8000:] + proc.stderr[-4000:]


def query(cluster: Cluster, database: str, statement: str, params=None) -> list[tuple]:
    return cluster.query(database, statement, params)


def databases(cluster: Cluster) -> set[str]:
    return {name for (name,) in query(cluster, "postgres", "SELECT datname FROM pg_database")}


def copied_schemas(cluster: Cluster) -> list[str]:
    if "lamassu" not in databases(cluster):
        return []
    rows = query(
        cluster,
        "lamassu",
        "SELECT target_schema FROM lamassu_migration.db_to_schema_copies WHERE status = 'published' ORDER BY 1"
        if query(cluster, "lamassu", "SELECT to_regclass('lamassu_migration.db_to_schema_copies')")[0][0]
        else "SELECT NULL WHERE false",
    )
    return [name for (name,) in rows]


def accepts_writes(cluster: Cluster, database: str) -> bool:
    try:
        cluster.execute(database, "CREATE TABLE public.write_probe (id int)", "DROP TABLE public.write_probe")
    except psycopg2.errors.ReadOnlySqlTransaction:
        return False
    return True


def latest_report(report_dir: Path, title: str, suffix: str = "md") -> str:
    reports = sorted(report_dir.glob(f"lamassu-{title}-*.{suffix}"))
    assert reports, f"no {title} report in {report_dir}: {list(report_dir.iterdir())}"
    return reports[-1].read_text()


def write_migrations(directory: Path) -> Path:
    """One directory per service, as in Lamassu's source tree; one new migration in each."""
    for service in SERVICES:
        (directory / service).mkdir(parents=True)
        (directory / service / f"{NEW_VERSION}_noop.sql").write_text("-- +goose Up\nSELECT 1;\n")
    (directory / "va" / f"{NEW_VA_VERSION}_flag.sql").write_text(
        "-- +goose Up\nALTER TABLE va_role ADD COLUMN flag int;\n-- +goose Down\nALTER TABLE va_role DROP COLUMN flag;\n"
    )
    return directory


def test_fleet_rollout_stops_at_the_first_failed_host_then_completes_idempotently(tmp_path):
    reports = tmp_path / "reports"
    with contextlib.ExitStack() as stack:
        clusters = {name: stack.enter_context(throwaway_cluster()) for name in ("dev1", "stg1", "prod1")}
        if len({c.port for c in clusters.values()}) < 3:
            pytest.skip("an external server cannot stand for three hosts")
        for cluster in clusters.values():
            build_legacy(cluster, scale=0.001, services=SERVICES)
        groups = {"dev1": "dev", "stg1": "staging", "prod1": "prod"}
        inventory = write_inventory(
            tmp_path / "inventory.json", {h: (groups[h], c, {}) for h, c in clusters.items()}, reports
        )
        serial = json.dumps({"lamassu_serial": [1, 1]})

        dry = playbook("upgrade.yml", inventory, "--check")
        assert dry.returncode == 0, output(dry)
        assert dry.stdout.count("ca: would copy") == 3, output(dry)  # planned before the database exists
        for cluster in clusters.values():
            assert "lamassu" not in databases(cluster)
            assert accepts_writes(cluster, "ca")

        # A schema held by something else on the second host stops the rollout there.
        clusters["stg1"].execute("postgres", "CREATE DATABASE lamassu")
        clusters["stg1"].execute("lamassu", "CREATE SCHEMA kms", "CREATE TABLE kms.stale (id int)")
        stopped = playbook("upgrade.yml", inventory, "-e", serial)
        assert stopped.returncode != 0, output(stopped)
        assert copied_schemas(clusters["dev1"]) == sorted(SERVICES), output(stopped)
        assert copied_schemas(clusters["stg1"]) == [], output(stopped)
        assert "lamassu" not in databases(clusters["prod1"]) and accepts_writes(clusters["prod1"], "ca")
        assert "prod1" not in recap(stopped)
        report = latest_report(reports, "upgrade")
        assert "**stg1** (failed" in report and "occupied" in report and "kms.stale" not in report
        assert "schema 'kms' of database 'lamassu' is occupied" in report
        assert "Not reached (the rollout stopped before them): prod1." in report
        html = latest_report(reports, "upgrade", "html")
        assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "stg1" in html

        clusters["stg1"].execute("lamassu", "DROP SCHEMA kms CASCADE")
        migrations = write_migrations(tmp_path / "migrations")
        args = ("-e", f"lamassu_migrations_dir={migrations}")  # all hosts in one batch from here on
        upgraded = playbook("upgrade.yml", inventory, *args)
        assert upgraded.returncode == 0, output(upgraded)
        for name, cluster in clusters.items():
            assert copied_schemas(cluster) == sorted(SERVICES), name
            version = query(cluster, "lamassu", "SELECT max(version_id) FROM va.goose_db_version")[0][0]
            assert version == NEW_VA_VERSION
            assert not accepts_writes(cluster, "va"), "the legacy databases stay frozen"
        assert all(counts["changed"] > 0 for host, counts in recap(upgraded).items() if host != "localhost")
        prod1 = latest_report(reports, "upgrade").split("### prod1", 1)[1]
        line = next(row for row in prod1.splitlines() if row.startswith("| ca |"))
        assert f"| legacy | migrated | {max(GOOSE_HISTORY['ca'])} | {NEW_VERSION} |" in line

        again = playbook("upgrade.yml", inventory, *args)
        assert again.returncode == 0, output(again)
        counts = recap(again)
        assert set(counts) >= set(clusters)
        assert all(c["changed"] == 0 and c["failed"] == 0 for c in counts.values()), counts
        # The fast path: nothing is left to do, so no step that changes things runs (no copy, no migrate module).
        assert "db_to_schema : " not in again.stdout and "schema_migrate : " not in again.stdout, output(again)
        assert latest_report(reports, "upgrade").count("| migrated |") >= 3 * len(SERVICES)

        status = playbook("status.yml", inventory)
        assert status.returncode == 0, output(status)
        assert all(c["changed"] == 0 for c in recap(status).values())
        report = latest_report(reports, "status")
        assert "| phase migrated | 3 |" in report and "| failed | 0 |" in report
        line = next(row for row in report.splitlines() if row.startswith("| va |"))
        assert f"| va | migrated | {NEW_VA_VERSION} | - |" in line  # status: no before/after columns


def test_rollback_restores_the_legacy_layout_and_cleanup_needs_confirmation(tmp_path):
    reports = tmp_path / "reports"
    config = tmp_path / "lamassu.yml"
    # The service logs in with its own role and password, which the cutover keeps (the login check uses them).
    original = "original: true\nstorage:\n  username: admin\n  password: admin-pw\n"
    config.write_text(original)
    hooks, hook_log = tmp_path / "hooks.yml", tmp_path / "hooks.log"
    hooks.write_text(
        json.dumps(
            [
                {
                    "name": "Note the hook",
                    "ansible.builtin.command": {
                        "argv": ["sh", "-c", f'echo "$0" >> {hook_log}', "{{ service_control_hook }}"]
                    },
                    "changed_when": False,
                }
            ]
        )
    )
    with throwaway_cluster() as cluster:
        if cluster.external:
            pytest.skip("the playbooks use the fixed legacy names, which an external server may hold")
        build_legacy(cluster, scale=0.001, services=SERVICES, app_password="admin-pw")
        inventory = write_inventory(
            tmp_path / "inventory.json",
            {
                "db1": (
                    "dev",
                    cluster,
                    {
                        "cutover_target": "files",
                        "cutover_service_configs": {"ca": str(config)},
                        "service_control_hooks_file": str(hooks),
                        "lamassu_start_services": True,
                    },
                )
            },
            reports,
        )

        upgraded = playbook("upgrade.yml", inventory)
        assert upgraded.returncode == 0, output(upgraded)
        rendered = config.read_text()
        assert rendered.startswith(original) and rendered.endswith("  database: lamassu\n"), rendered
        assert Path(f"{config}.pre-lamassu").read_text() == original
        assert not accepts_writes(cluster, "ca")
        assert hook_log.read_text() == "stop\nstart\n"

        # A migration applied to a copy since: refused on that host before anything changes, then discarded on demand.
        cluster.execute(
            "lamassu", "INSERT INTO va.goose_db_version (version_id, is_applied) VALUES (20990101000000, true)"
        )
        refused = playbook("rollback.yml", inventory)
        assert refused.returncode != 0 and "table goose_db_version:" in refused.stdout, output(refused)
        assert "-e lamassu_rollback_discard_changes=true" in refused.stdout
        # The copy module names its option; the report writes the playbook variable that sets it.
        assert "fix: `-e lamassu_rollback_discard_changes=true`" in latest_report(reports, "rollback")
        assert copied_schemas(cluster) == sorted(SERVICES) and not accepts_writes(cluster, "ca")
        assert hook_log.read_text() == "stop\nstart\n" and "database: lamassu" in config.read_text()

        rolled_back = playbook("rollback.yml", inventory, "-e", "lamassu_rollback_discard_changes=true")
        assert rolled_back.returncode == 0, output(rolled_back)
        # The dry run before any change is named as one and reports no change; the real pass does.
        sections = {t.split("]", 1)[0]: t for t in rolled_back.stdout.split("TASK [")}
        dry_run = sections["Remove the recorded copies and lift the freezes - dry run, nothing changes"]
        assert "changed:" not in dry_run and "ok: [db1] => (item=ca)" in dry_run, output(rolled_back)
        assert "changed: [db1] => (item=ca)" in sections["Remove the recorded copies and lift the freezes"]
        assert copied_schemas(cluster) == []
        schemas = {n for (n,) in query(cluster, "lamassu", "SELECT nspname FROM pg_namespace")}
        assert not schemas & set(SERVICES)
        assert all(accepts_writes(cluster, service) for service in SERVICES)
        assert config.read_text() == original
        assert not Path(f"{config}.pre-lamassu").exists()
        assert hook_log.read_text() == "stop\nstart\n" * 2
        assert "| phase legacy | 1 |" in latest_report(reports, "rollback")

        # Migration files that the copied history already holds: nothing to apply, and the schemas are migrated.
        head = tmp_path / "head"
        for service in SERVICES:
            (head / service).mkdir(parents=True)
            (head / service / f"{max(GOOSE_HISTORY[service])}_head.sql").write_text("-- +goose Up\nSELECT 1;\n")
        upgraded = playbook("upgrade.yml", inventory, "-e", f"lamassu_migrations_dir={head}")
        assert upgraded.returncode == 0, output(upgraded)
        line = next(row for row in latest_report(reports, "upgrade").splitlines() if row.startswith("| ca |"))
        assert f"| legacy | migrated | {max(GOOSE_HISTORY['ca'])} | {max(GOOSE_HISTORY['ca'])} |" in line
        refused = playbook("cleanup.yml", inventory)
        assert refused.returncode != 0
        assert "set legacy_cleanup_confirm=true" in refused.stdout
        assert set(SERVICES) <= databases(cluster)

        dumps = tmp_path / "dumps"
        cleaned = playbook(
            "cleanup.yml",
            inventory,
            "-e",
            json.dumps(
                {
                    "legacy_cleanup_confirm": True,
                    "legacy_cleanup_dump_dir": str(dumps),
                    "legacy_cleanup_pg_dump": cluster.tool("pg_dump"),
                }
            ),
        )
        assert cleaned.returncode == 0, output(cleaned)
        assert not set(SERVICES) & databases(cluster)
        assert sorted(p.name for p in dumps.iterdir()) == sorted(f"{s}.dump" for s in SERVICES)
        listing = subprocess.run(
            [cluster.tool("pg_restore"), "--list", str(dumps / "va.dump")], capture_output=True, text=True, check=True
        )
        assert "va_role" in listing.stdout
        assert "| phase cleaned | 1 |" in latest_report(reports, "cleanup")

        again = playbook("cleanup.yml", inventory, "-e", "legacy_cleanup_confirm=true")
        assert again.returncode == 0 and recap(again)["db1"]["changed"] == 0, output(again)

        refused = playbook("rollback.yml", inventory)
        assert refused.returncode != 0 and "are dropped, their schemas hold the only copy" in refused.stdout
        assert copied_schemas(cluster) == sorted(SERVICES)


def test_limit_to_one_host_works_on_every_playbook_and_a_rolling_run_has_one_id(tmp_path):
    reports = tmp_path / "reports"
    with contextlib.ExitStack() as stack:
        clusters = {name: stack.enter_context(throwaway_cluster()) for name in ("host1", "host2")}
        if len({c.port for c in clusters.values()}) < 2:
            pytest.skip("an external server cannot stand for two hosts")
        for cluster in clusters.values():
            build_legacy(cluster, scale=0.0001, services=("va",))
        only_va = {"lamassu_services": ["va"]}
        inventory = write_inventory(
            tmp_path / "inventory.json", {h: ("dev", c, only_va) for h, c in clusters.items()}, reports
        )

        def run(name: str, *args: str) -> tuple[subprocess.CompletedProcess, str]:
            """The playbook and the one id of the report files it wrote, the start time of ansible-playbook."""
            before = {p.name for p in reports.glob("*.json")} if reports.exists() else set()
            launched = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
            proc = playbook(name, inventory, *args)
            assert proc.returncode == 0, output(proc)
            written = sorted(p.name for p in reports.glob("lamassu-*.json") if p.name not in before)
            assert len(written) == 1, (written, output(proc))
            title, run_id = re.fullmatch(r"lamassu-(\w+)-(\d{8}T\d{6}Z)\.json", written[0]).groups()
            assert title == name.removesuffix(".yml")
            started = datetime.datetime.strptime(run_id, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
            assert launched - datetime.timedelta(seconds=1) <= started <= launched + datetime.timedelta(seconds=3)
            return proc, run_id

        def only_host2_ran(proc: subprocess.CompletedProcess) -> None:
            assert set(recap(proc)) == {"host2"}, output(proc)
            assert "lamassu" not in databases(clusters["host1"]) and accepts_writes(clusters["host1"], "va")

        upgraded, run_id = run("upgrade.yml", "--limit", "host2")
        only_host2_ran(upgraded)
        assert copied_schemas(clusters["host2"]) == ["va"] and not accepts_writes(clusters["host2"], "va")
        assert "### host2" in (reports / f"lamassu-upgrade-{run_id}.md").read_text()

        status, _run_id = run("status.yml", "--limit", "host2")
        only_host2_ran(status)
        assert recap(status)["host2"]["changed"] == 0

        rolled_back, _run_id = run("rollback.yml", "--limit", "host2")
        only_host2_ran(rolled_back)
        assert copied_schemas(clusters["host2"]) == [] and accepts_writes(clusters["host2"], "va")

        run("upgrade.yml", "--limit", "host2")
        cleaned, _run_id = run("cleanup.yml", "--limit", "host2", "-e", "legacy_cleanup_confirm=true")
        only_host2_ran(cleaned)
        assert "va" not in databases(clusters["host2"]) and copied_schemas(clusters["host2"]) == ["va"]

        # Two batches of one host each, one run: both write the same report files.
        rolled_out, run_id = run("upgrade.yml", "-e", "lamassu_serial=1")
        assert set(recap(rolled_out)) == {"localhost", "host1", "host2"}
        assert copied_schemas(clusters["host1"]) == ["va"]
        report = (reports / f"lamassu-upgrade-{run_id}.md").read_text()
        assert "### host1" in report and "### host2" in report


def test_writes_after_the_copy_block_cutover_and_cleanup_until_copied_again(tmp_path):
    reports = tmp_path / "reports"
    with throwaway_cluster() as cluster:
        if cluster.external:
            pytest.skip("the playbooks use the fixed legacy names, which an external server may hold")
        build_legacy(cluster, scale=0.0001, services=SERVICES)
        # Without the freeze the services can keep writing to their legacy databases after the copy.
        host = {"db1": ("dev", cluster, {"lamassu_freeze_sources": False})}
        inventory = write_inventory(tmp_path / "inventory.json", host, reports)
        upgraded = playbook("upgrade.yml", inventory)
        assert upgraded.returncode == 0, output(upgraded)

        cluster.execute(
            "va", "UPDATE goose_db_version SET tstamp = tstamp WHERE id = (SELECT min(id) FROM goose_db_version)"
        )
        refused = playbook("upgrade.yml", inventory)
        assert refused.returncode != 0 and "Nothing was cut over" in refused.stdout, output(refused)
        assert (
            "the legacy database of service 'va' took writes after its copy (table goose_db_version: 1 updates)"
            in refused.stdout
        )
        assert "[WARNING]" in refused.stdout + refused.stderr
        kept = playbook("cleanup.yml", inventory, "-e", "legacy_cleanup_confirm=true")
        assert kept.returncode != 0 and "service 'va' took writes after its copy" in kept.stdout, output(kept)
        assert set(SERVICES) <= databases(cluster)

        recopied = playbook("upgrade.yml", inventory, "-e", "db_to_schema_if_target_exists=replace")
        assert recopied.returncode == 0, output(recopied)
        assert cluster.query("lamassu", "SELECT count(*) FROM va.goose_db_version") == cluster.query(
            "va", "SELECT count(*) FROM goose_db_version"
        )
        again = playbook("upgrade.yml", inventory)
        assert again.returncode == 0 and recap(again)["db1"]["changed"] == 0, output(again)
        cleaned = playbook("cleanup.yml", inventory, "-e", "legacy_cleanup_confirm=true")
        assert cleaned.returncode == 0, output(cleaned)
        assert not set(SERVICES) & databases(cluster)


def test_preflight_reports_every_problem_at_once(pg, unique_name, tmp_path):
    prefix, database = f"{unique_name}_", f"{unique_name}_lamassu"
    build_legacy(pg, scale=0.001, services=("va",), prefix=prefix)  # kms is missing
    pg.execute("postgres", f'CREATE DATABASE "{database}"')
    pg.execute(database, "CREATE SCHEMA va", "CREATE TABLE va.leftover (id int)")
    go = tmp_path / "migrations" / "va"
    go.mkdir(parents=True)
    (go / "20270101000000_rewrite.go").write_text("package migrations\n")
    (go / "00000000000001_old.go").write_text("package migrations\n")  # applied long ago: not pending
    # Older than the current version and never applied: missing, and the migrate module would refuse it too.
    (go / "20200101000000_never_applied.go").write_text("package migrations\n")
    out = tmp_path / "problems.json"
    role_vars = {
        "preflight_services": ["va", "kms"],
        "preflight_source_prefix": prefix,
        "preflight_database": database,
        "preflight_migrations_dir": str(tmp_path / "migrations"),
        "preflight_disk_margin": 1e12,
    }

    def play(defaults: dict, fail: bool) -> dict:
        return {
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/lamassuiot.postgres.all": defaults},
            "tasks": [
                {
                    "ansible.builtin.include_role": {"name": "lamassuiot.postgres.preflight"},
                    "vars": {**role_vars, "preflight_fail": fail},
                },
                {"ansible.builtin.copy": {"content": "{{ preflight_problems | to_json }}", "dest": str(out)}},
            ],
        }

    path = tmp_path / "play.yml"
    path.write_text(json.dumps([play(pg.module_defaults(), False)]))
    proc = run_playbook(path, "-i", "localhost,", "-c", "local")
    assert proc.returncode == 0, output(proc)
    problems = json.loads(out.read_text())
    assert len(problems) == 4, problems
    for fragment in ("occupied", f"legacy database '{prefix}kms' is missing", "not enough free disk", "20270101000000"):
        assert sum(fragment in p for p in problems) == 1, (fragment, problems)
    assert "cannot be run: 20200101000000, 20270101000000" in " ".join(problems)

    path.write_text(json.dumps([play(pg.module_defaults(), True)]))
    proc = run_playbook(path, "-i", "localhost,", "-c", "local")
    assert proc.returncode != 0
    assert "Preflight found 4 problem(s) on localhost" in proc.stdout

    out.unlink()
    path.write_text(json.dumps([play({**pg.module_defaults(), "login_port": 1, "connect_timeout": 2}, False)]))
    proc = run_playbook(path, "-i", "localhost,", "-c", "local")
    assert proc.returncode == 0, output(proc)
    problems = json.loads(out.read_text())
    assert len(problems) == 1 and problems[0].startswith("preflight could not read the server: Cannot connect")
