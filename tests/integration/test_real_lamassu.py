"""upgrade.yml on what a real Lamassu installation holds: a checkout's migrations tree as it is (service folders
beside helpers/, gomigrations.go and db-to-schema.md), the unified database named ``lamassu`` or ``pki``, and the
blockers preflight must name before anything changes (the other unified name in use, a pooler or proxy, a standby,
pending Go migrations, services without a folder)."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from tests.harness.ansible import run_module, run_playbook, write_inventory
from tests.harness.collection import ROOT
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import _as_server_user, free_port, throwaway_cluster
from tests.harness.snapshot import server_state, state_differences
from tests.integration.test_db_to_schema import assert_faithful

FIXTURE_MIGRATIONS = ROOT / "tests" / "fixtures" / "migrations"
SERVICES = ("ca", "devicemanager", "dmsmanager", "alerts", "va", "kms")
CHECKOUT_SUBDIR = Path("engines", "storage", "postgres", "migrations")


def lamassu_checkout(directory: Path, services=SERVICES) -> Path:
    """A checkout of lamassuiot/lamassuiot as far as the migrations go: the service folders of our fixture tree and
    the entries that are not services (upstream keeps Go helpers, the registration of the Go migrations and the
    plan beside them)."""
    migrations = directory / CHECKOUT_SUBDIR
    migrations.mkdir(parents=True)
    for service in services:
        shutil.copytree(FIXTURE_MIGRATIONS / service, migrations / service)
    (migrations / "helpers").mkdir()
    (migrations / "helpers" / "helpers.go").write_text("package helpers\n")
    (migrations / "gomigrations.go").write_text("package migrations\n")
    (migrations / "db-to-schema.md").write_text("# Migrating from Multi-Database to Multi-Schema\n")
    (directory / "go.work").write_text("go 1.24\n")
    return directory


def inventory(path: Path, cluster, **host_vars) -> Path:
    return write_inventory(path, cluster, lamassu_report_dir=str(path.parent / "reports"), **host_vars)


def upgrade(inventory_path: Path, *args: str) -> subprocess.CompletedProcess:
    return run_playbook(ROOT / "playbooks" / "upgrade.yml", "-i", str(inventory_path), *args)


def changed_count(proc: subprocess.CompletedProcess) -> int:
    match = re.search(r"db1\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", proc.stdout)
    assert match, proc.stdout[-6000:] + proc.stderr[-3000:]
    return int(match.group(1))


@pytest.mark.parametrize(
    ("database", "given"),
    [("lamassu", "checkout root"), ("pki", "migrations folder")],
)
def test_upgrade_with_a_checkout_tree_moves_every_service_and_leaves_nothing_pending(tmp_path, database, given):
    checkout = lamassu_checkout(tmp_path / "lamassuiot")
    tree = checkout if given == "checkout root" else checkout / CHECKOUT_SUBDIR
    with throwaway_cluster() as cluster:
        build_legacy(cluster, scale=0.001)
        inv = inventory(
            tmp_path / "inventory.json", cluster, lamassu_pg_database=database, lamassu_migrations_dir=str(tree)
        )
        first = upgrade(inv)
        assert first.returncode == 0, first.stdout[-8000:] + first.stderr[-3000:]
        assert changed_count(first) > 0
        for service in SERVICES:
            assert_faithful(cluster, service, database, service)
        assert "ca.certificates:" not in first.stdout, "per-table lines are for -v"
        verdict = r'"msg": "db1: ok in [0-9.]+ s \(offline move, services stopped [0-9.]+ s\); services: 6 migrated"'
        assert re.search(verdict, first.stdout), first.stdout[-3000:]

        status = run_module(
            "postgres_lamassu_info",
            {"database": database, "migrations_path": str(tree)},
            cluster,
        ).results[0]
        assert status["ready"], status["problems"]
        assert status["phases"]["migrated"] == list(SERVICES), status["phases"]
        assert {s: status["services"][s]["pending_migrations"] for s in SERVICES} == {s: [] for s in SERVICES}
        # One truth about phases: the upgrade report, its console, and status.yml a moment later agree.
        status_run = run_playbook(ROOT / "playbooks" / "status.yml", "-i", str(inv))
        assert status_run.returncode == 0, status_run.stdout[-5000:]
        reports = tmp_path / "reports"
        upgrade_phases = phase_counts(latest(reports, "upgrade"))
        assert upgrade_phases == phase_counts(latest(reports, "status")), upgrade_phases
        assert upgrade_phases["migrated"] == 1 and sum(upgrade_phases.values()) == 1, upgrade_phases
        assert all(f"{s} (migrated):" in first.stdout for s in SERVICES), first.stdout[-5000:]
        other = "pki" if database == "lamassu" else "lamassu"
        assert other not in {r[0] for r in cluster.query("postgres", "SELECT datname FROM pg_database")}

        before = server_state(cluster, [database, *SERVICES])
        second = upgrade(inv)
        assert second.returncode == 0, second.stdout[-8000:] + second.stderr[-3000:]
        assert changed_count(second) == 0
        assert not state_differences(before, server_state(cluster, [database, *SERVICES]))


def latest(report_dir: Path, title: str) -> str:
    return sorted(report_dir.glob(f"lamassu-{title}-*.md"))[-1].read_text()


def phase_counts(report: str) -> dict[str, int]:
    """The fleet table's ``| phase <name> | <hosts> |`` rows."""
    return {name: int(count) for name, count in re.findall(r"^\| phase (\S+) \| (\d+) \|", report, re.MULTILINE)}


class TcpForwarder:
    """A plain TCP proxy on another port: what a pooler or a port-forward looks like from the client."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        # Port 0: the kernel picks and holds it at once (free_port() would leave a window to another worker's server).
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                client, _address = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self):
        self.server.close()


def test_preflight_names_every_real_blocker_at_once_and_changes_nothing(tmp_path):
    # A tree where ca has a pending Go migration without a port and kms has no folder; pki holds a service
    # schema; the connection goes through a proxy.
    checkout = lamassu_checkout(tmp_path / "lamassuiot", services=("ca", "va"))
    ca = checkout / CHECKOUT_SUBDIR / "ca"
    (ca / "20990101000000_rewrite_metadata.go").write_text("package ca\n")
    with throwaway_cluster() as cluster:
        build_legacy(cluster, scale=0.001, services=("ca", "va", "kms"))
        cluster.execute("postgres", "CREATE DATABASE pki")
        cluster.execute("pki", "CREATE SCHEMA ca", "CREATE TABLE ca.certificates (serial_number text PRIMARY KEY)")
        proxy = TcpForwarder(cluster.port)
        try:
            inv = inventory(
                tmp_path / "inventory.json",
                cluster,
                lamassu_pg_port=proxy.port,
                lamassu_services=["ca", "va", "kms"],
                lamassu_migrations_dir=str(checkout),
            )
            before = server_state(cluster, ["lamassu", "pki", "ca", "va", "kms"])
            run = upgrade(inv)
        finally:
            proxy.close()
        out = run.stdout + run.stderr
        assert run.returncode != 0, out[-6000:]
        assert "Preflight found 3 problem(s)" in out, out[-6000:]
        assert f"the connection used port {proxy.port} but the server listens on port {cluster.port}" in out
        assert "database 'pki' already holds Lamassu service schemas (ca (1 tables))" in out
        assert "Set lamassu_pg_database: pki" in out
        assert "pending Go migrations without a Python port, which cannot be run: 20990101000000" in out
        assert "upgrade Lamassu within the legacy layout first (its goose-lamassu Job runs them)" in out
        assert "no migrations folder for service(s) kms" in out
        assert not state_differences(before, server_state(cluster, ["lamassu", "pki", "ca", "va", "kms"]))

        # A plain port mapping, said so: the proxy is no longer a problem; an empty pki only a warning.
        cluster.execute("pki", "DROP SCHEMA ca CASCADE")
        proxy = TcpForwarder(cluster.port)
        try:
            info = run_module(
                "postgres_lamassu_info",
                {"services": ["va"], "proxy_check": False},
                connection={**cluster.module_defaults(), "login_port": proxy.port},
            ).results[0]
        finally:
            proxy.close()
        assert info["ready"], info["problems"]
        assert info["server"]["connected_port"] == proxy.port
        assert info["server"]["listen_port"] == cluster.port
        assert any(
            "database 'pki' exists on the server and holds no Lamassu service schema" in w for w in info["notices"]
        )


def test_preflight_refuses_a_standby(tmp_path):
    with throwaway_cluster(settings={"wal_level": "replica", "max_wal_senders": "4"}) as primary:
        if primary.external:
            pytest.skip("a standby needs a throwaway primary")
        hba = Path(primary.data_dir, "pg_hba.conf")
        subprocess.run(
            _as_server_user(["tee", "-a", str(hba)]),
            input=b"host replication postgres 127.0.0.1/32 trust\n",
            check=True,
            stdout=subprocess.DEVNULL,
        )
        primary.execute("postgres", "SELECT pg_reload_conf()")
        build_legacy(primary, scale=0.001, services=("va",))
        standby_dir = Path(primary.base_dir, "standby")
        subprocess.run(_as_server_user(["mkdir", "-m", "0700", str(standby_dir)]), check=True)
        subprocess.run(
            _as_server_user(
                [
                    primary.tool("pg_basebackup"),
                    "-h",
                    primary.host,
                    "-p",
                    str(primary.port),
                    "-U",
                    "postgres",
                    "-D",
                    str(standby_dir / "data"),
                    "-R",
                    "-X",
                    "stream",
                ]
            ),
            check=True,
            capture_output=True,
        )
        port = free_port()
        standby = start_standby(primary, standby_dir, port)
        try:
            info = run_module("postgres_lamassu_info", {"services": ["va"]}, standby).results[0]
        finally:
            subprocess.run(
                _as_server_user([primary.tool("pg_ctl"), "-D", str(standby_dir / "data"), "stop", "-m", "immediate"]),
                check=False,
                capture_output=True,
            )
        assert info["server"]["in_recovery"] is True
        assert any(p.startswith("the server is a standby (pg_is_in_recovery() is true)") for p in info["problems"])
        assert not info["ready"]


def start_standby(primary, standby_dir: Path, port: int):
    data = standby_dir / "data"
    settings = f"port = '{port}'\nunix_socket_directories = '{standby_dir}'\n"
    subprocess.run(
        _as_server_user(["tee", "-a", str(data / "postgresql.auto.conf")]),
        input=settings.encode(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        _as_server_user(
            [primary.tool("pg_ctl"), "-D", str(data), "-l", str(standby_dir / "server.log"), "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )
    return replace(primary, port=port, base_dir=str(standby_dir))
