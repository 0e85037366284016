"""upgrade.yml with lamassu_move_mode=online on a throwaway cluster: the services (a writer) keep writing during
the live copy and stop at the stop step; every acknowledged write is in the schemas, the report names the mode and
the stop window, no slot is left, a re-run changes nothing; rollback.yml during the live phase; preflight's refusal
on a server without wal_level=logical."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from pathlib import Path

import psycopg2
import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import MOVE_PREFIX
from tests.harness.ansible import run_module
from tests.harness.catalog import data_checksums
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import throwaway_cluster
from tests.integration.test_playbooks import (
    SERVICES,
    accepts_writes,
    databases,
    latest_report,
    output,
    playbook,
    recap,
    write_inventory,
)

ONLINE = {"lamassu_move_mode": "online"}


def leftovers(cluster) -> list[str]:
    """The collection's slots on the server and the publications of the legacy databases."""
    found = [
        name
        for (name,) in cluster.query(
            "postgres", "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s", (MOVE_PREFIX + "%",)
        )
    ]
    for service in SERVICES:
        if service in databases(cluster):
            found += [name for (name,) in cluster.query(service, "SELECT pubname FROM pg_publication")]
    return found


class Services:
    """Lamassu's services as the source sees them: certificates issued and revoked in ``ca`` until the stop step's
    hook touches ``stopped``; ``acknowledged`` holds every serial number whose insert the server acknowledged."""

    def __init__(self, cluster, stopped: Path):
        self.conn = cluster.connect("ca", autocommit=False)
        self.stopped = stopped
        self.acknowledged: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.conn.cursor() as cur:
            while not self.stopped.exists():
                serial = uuid.uuid4().hex
                try:
                    cur.execute(
                        "INSERT INTO certificates (serial_number, status, valid_from) VALUES (%s, 'ACTIVE', now())",
                        (serial,),
                    )
                    cur.execute(
                        "UPDATE certificates SET status = 'REVOKED' WHERE serial_number = (SELECT serial_number "
                        "FROM certificates WHERE status = 'ACTIVE' ORDER BY random() LIMIT 1)"
                    )
                    self.conn.commit()
                except psycopg2.Error:
                    return  # stopped the hard way: the freeze ended the session
                self.acknowledged.append(serial)

    def __enter__(self) -> Services:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.touch()
        self.thread.join(30)
        self.conn.close()


def hooks_file(tmp_path: Path, stopped: Path) -> Path:
    """service_control hooks: stop touches ``stopped`` (the services stop writing), start does nothing."""
    hooks = tmp_path / "hooks.yml"
    hooks.write_text(
        json.dumps(
            [
                {
                    "name": "Stop or start the services",
                    "ansible.builtin.file": {"path": str(stopped), "state": "touch"},
                    "when": "service_control_hook == 'stop'",
                }
            ]
        )
    )
    return hooks


def test_an_online_upgrade_keeps_every_write_made_during_the_copy_and_stops_the_services_briefly(tmp_path):
    reports, stopped = tmp_path / "reports", tmp_path / "stopped"
    with throwaway_cluster() as cluster:
        if cluster.external:
            pytest.skip("the playbooks use the fixed legacy names, which an external server may hold")
        build_legacy(cluster, scale=0.002, services=SERVICES)
        host = {**ONLINE, "service_control_hooks_file": str(hooks_file(tmp_path, stopped))}
        inventory = write_inventory(tmp_path / "inventory.json", {"db1": ("dev", cluster, host)}, reports)
        checked = playbook("upgrade.yml", inventory, "--check")
        assert checked.returncode == 0, output(checked)
        assert "lamassu" not in databases(cluster) and leftovers(cluster) == []
        assert not stopped.exists()
        with Services(cluster, stopped) as services:
            upgraded = playbook("upgrade.yml", inventory)
        assert upgraded.returncode == 0, output(upgraded)
        assert services.acknowledged, "the services wrote nothing during the live copy"
        assert "Copy each legacy database while the services run" in upgraded.stdout
        assert "Switch each service to its copy" in upgraded.stdout
        for service in SERVICES:
            with (
                contextlib.closing(cluster.connect(service)) as source,
                contextlib.closing(cluster.connect("lamassu")) as target,
            ):
                assert data_checksums(target, service) == data_checksums(source, "public"), service
            assert not accepts_writes(cluster, service)
        copied = {s for (s,) in cluster.query("lamassu", "SELECT serial_number FROM ca.certificates")}
        assert set(services.acknowledged) <= copied
        assert leftovers(cluster) == []
        report = latest_report(reports, "upgrade")
        assert "| online |" in report, report
        assert "online move, services stopped" in upgraded.stdout

        again = playbook("upgrade.yml", inventory)
        assert again.returncode == 0, output(again)
        assert recap(again)["db1"]["changed"] == 0, output(again)
        status = playbook("status.yml", inventory)
        assert status.returncode == 0, output(status)

        # A switch killed after its publish leaves its slot and publication: status names it, cleanup drops it
        # before it drops the legacy database (which a slot would block).
        oid = cluster.query("postgres", "SELECT oid FROM pg_database WHERE datname = 'lamassu'")[0][0]
        name = f"{MOVE_PREFIX}{oid}_ca"
        cluster.execute(
            "ca",
            "SET default_transaction_read_only TO off",  # ca is frozen since the switch
            f"CREATE PUBLICATION {name} FOR TABLE certificates",
            f"SELECT pg_create_logical_replication_slot('{name}', 'pgoutput')",
        )
        stale = playbook("status.yml", inventory)
        assert stale.returncode != 0 and name in stale.stdout, output(stale)
        cleaned = playbook(
            "cleanup.yml",
            inventory,
            "-e",
            json.dumps(
                {
                    "legacy_cleanup_confirm": True,
                    "legacy_cleanup_dump_dir": str(tmp_path / "dumps"),
                    "legacy_cleanup_pg_dump": cluster.tool("pg_dump"),
                }
            ),
        )
        assert cleaned.returncode == 0, output(cleaned)
        assert leftovers(cluster) == []
        assert not set(SERVICES) & databases(cluster)


def test_rollback_during_the_live_phase_drops_the_slots_and_leaves_the_sources_untouched(tmp_path):
    reports = tmp_path / "reports"
    with throwaway_cluster() as cluster:
        if cluster.external:
            pytest.skip("the playbooks use the fixed legacy names, which an external server may hold")
        build_legacy(cluster, scale=0.001, services=SERVICES)
        before = {s: cluster.query(s, "SELECT count(*) FROM pg_class WHERE relkind = 'r'") for s in SERVICES}
        cluster.execute("postgres", "CREATE DATABASE lamassu")
        for service in ("ca", "va"):  # the live phase of two services, as upgrade.yml's live step leaves it
            live = run_module(
                "postgres_db_to_schema",
                {"source_database": service, "target_schema": service, "online": "live"},
                cluster,
            ).result
            assert live.get("failed") is not True, live
        assert len(leftovers(cluster)) == 4
        inventory = write_inventory(tmp_path / "inventory.json", {"db1": ("dev", cluster, ONLINE)}, reports)
        status = playbook("status.yml", inventory)
        assert status.returncode != 0 and "of an interrupted online move is not in use" in status.stdout, output(status)
        rolled = playbook("rollback.yml", inventory)
        assert rolled.returncode == 0, output(rolled)
        assert leftovers(cluster) == []
        for service in SERVICES:
            assert accepts_writes(cluster, service)
            assert cluster.query(service, "SELECT count(*) FROM pg_class WHERE relkind = 'r'") == before[service]
        assert cluster.query("lamassu", "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'lamassu_stage%%'") == []


def test_preflight_refuses_the_online_move_without_logical_decoding_and_changes_nothing(tmp_path):
    reports = tmp_path / "reports"
    with throwaway_cluster(settings={"wal_level": "replica"}) as cluster:
        if cluster.external:
            pytest.skip("needs a server of its own with wal_level=replica")
        build_legacy(cluster, scale=0.001, services=SERVICES)
        inventory = write_inventory(tmp_path / "inventory.json", {"db1": ("dev", cluster, ONLINE)}, reports)
        refused = playbook("upgrade.yml", inventory)
        assert refused.returncode != 0
        assert "ALTER SYSTEM SET wal_level = logical" in refused.stdout, output(refused)
        assert "lamassu" not in databases(cluster)
        assert all(accepts_writes(cluster, s) for s in SERVICES)
