"""Writes during an upgrade: an application keeps inserting into the legacy ``ca.certificates`` while ``upgrade.yml``
runs with ``lamassu_freeze_sources: true``.

The writer is a plain login role (as the services are), one insert per transaction, each with a unique key; it
reconnects whenever its session ends (the freeze terminates the sessions opened before it). Every attempt is
recorded as acknowledged (COMMIT returned), refused (the INSERT failed, so COMMIT was never sent) or unknown (the
session died during COMMIT). The promise checked: from the freeze on writes fail with an error, every acknowledged
write is in ``lamassu.ca.certificates`` exactly once, no refused write is there, and the legacy database keeps
refusing writes after the run.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest

from tests.harness.ansible import run_playbook
from tests.harness.collection import ROOT
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import Cluster, throwaway_cluster

WRITER = "lamassu_writer"
WRITER_PASSWORD = "writer-secret-1"
PREFIX = "writer-"
INSERT = "INSERT INTO certificates (serial_number, status, subject_common_name) VALUES (%s, 'ACTIVE', %s)"


@dataclass
class Attempt:
    key: str
    outcome: str  # acknowledged | refused | unknown
    error: str = ""
    error_class: str = ""


@dataclass
class Writer:
    """Inserts into ``ca.certificates`` until stopped; one transaction per insert."""

    cluster: Cluster
    attempts: list[Attempt] = field(default_factory=list)
    connects: int = 0
    connect_failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def connect(self):
        conn = psycopg2.connect(
            host=self.cluster.host,
            port=self.cluster.port,
            user=WRITER,
            password=WRITER_PASSWORD,
            dbname="ca",
            connect_timeout=5,
        )
        conn.autocommit = False
        self.connects += 1
        return conn

    def run(self) -> None:
        conn = None
        number = 0
        while not self.stop.is_set():
            if conn is None or conn.closed:
                try:
                    conn = self.connect()
                except psycopg2.OperationalError:
                    self.connect_failures += 1
                    time.sleep(0.05)
                    continue
            number += 1
            key = f"{PREFIX}{number:06d}"
            attempt = self.attempt(conn, key)
            self.attempts.append(attempt)
            if attempt.outcome != "acknowledged":
                with contextlib.suppress(psycopg2.Error):
                    conn.rollback()
                if attempt.error_class != "ReadOnlySqlTransaction":
                    with contextlib.suppress(psycopg2.Error):
                        conn.close()
                # A refused writer retries, as a service would, but not in a busy loop.
                time.sleep(0.02)
            else:
                time.sleep(0.005)
        if conn is not None:
            conn.close()

    @staticmethod
    def attempt(conn, key: str) -> Attempt:
        try:
            with conn.cursor() as cur:
                cur.execute(INSERT, (key, key))
        except psycopg2.Error as e:
            return Attempt(key, "refused", str(e).strip(), type(e).__name__)
        try:
            conn.commit()
        except psycopg2.Error as e:
            # The session died while COMMIT was on its way: the server may or may not have committed.
            return Attempt(key, "unknown", str(e).strip(), type(e).__name__)
        return Attempt(key, "acknowledged")


def write_inventory(path: Path, cluster: Cluster, report_dir: Path) -> Path:
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "lamassu_pg_host": cluster.host,
        "lamassu_pg_port": cluster.port,
        "lamassu_report_dir": str(report_dir),
        "lamassu_services": ["ca"],
        "lamassu_freeze_sources": True,
    }
    path.write_text(json.dumps({"lamassu_postgres": {"children": {"dev": {"hosts": {"db1": host}}}}}))
    return path


def legacy_write_error(cluster: Cluster) -> str:
    """The error class of one more insert into the legacy database as the writer ('' when it was accepted)."""
    writer = Writer(cluster)
    conn = writer.connect()
    try:
        attempt = writer.attempt(conn, f"{PREFIX}after-the-run")
    finally:
        conn.close()
    return attempt.error_class


def test_writes_during_a_frozen_upgrade_are_either_refused_or_copied_exactly_once(tmp_path):
    with throwaway_cluster() as cluster:
        if cluster.external:
            pytest.skip("the playbook uses the fixed legacy names, which an external server may hold")
        build_legacy(cluster, scale=0.001, services=("ca",))
        cluster.execute(
            "postgres",
            f"CREATE ROLE {WRITER} LOGIN PASSWORD '{WRITER_PASSWORD}'",
        )
        cluster.execute("ca", f"GRANT INSERT ON public.certificates TO {WRITER}")
        before = cluster.query("ca", "SELECT count(*) FROM certificates")[0][0]
        inventory = write_inventory(tmp_path / "inventory.json", cluster, tmp_path / "reports")

        writer = Writer(cluster)
        thread = threading.Thread(target=writer.run, name="legacy-writer", daemon=True)
        thread.start()
        try:
            # Let the application write for a while before the upgrade starts.
            deadline = time.monotonic() + 10
            while sum(a.outcome == "acknowledged" for a in writer.attempts) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            upgrade = run_playbook(ROOT / "playbooks" / "upgrade.yml", "-i", str(inventory))
            # A few more attempts against the frozen database while nothing else happens.
            seen = len(writer.attempts)
            deadline = time.monotonic() + 10
            while len(writer.attempts) < seen + 5 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            writer.stop.set()
            thread.join(timeout=30)
        assert not thread.is_alive()
        assert upgrade.returncode == 0, upgrade.stdout[-8000:] + upgrade.stderr[-4000:]

        attempts = writer.attempts
        outcomes = [a.outcome for a in attempts]
        assert len(attempts) == len({a.key for a in attempts})
        first_failure = next((i for i, a in enumerate(attempts) if a.outcome != "acknowledged"), None)
        assert first_failure is not None, "no write failed: the legacy database was not frozen"
        assert first_failure >= 20, "the writer wrote before the upgrade froze the database"
        # From the freeze on, nothing is acknowledged any more: every write fails with an error.
        assert set(outcomes[first_failure:]) <= {"refused", "unknown"}, outcomes[first_failure:]
        failures = attempts[first_failure:]
        assert all(a.error for a in failures)
        expected = {"ReadOnlySqlTransaction", "AdminShutdown", "OperationalError", "InterfaceError"}
        assert {a.error_class for a in failures} <= expected, {(a.error_class, a.error) for a in failures}
        assert any(a.error_class == "ReadOnlySqlTransaction" for a in failures)
        assert all("read-only transaction" in a.error for a in failures if a.error_class == "ReadOnlySqlTransaction")

        acknowledged = {a.key for a in attempts if a.outcome == "acknowledged"}
        refused = {a.key for a in attempts if a.outcome == "refused"}
        unknown = {a.key for a in attempts if a.outcome == "unknown"}
        copied = [
            key
            for (key,) in cluster.query(
                "lamassu", "SELECT serial_number FROM ca.certificates WHERE serial_number LIKE %s", (PREFIX + "%",)
            )
        ]
        assert len(copied) == len(set(copied)), "a write was copied twice"
        assert acknowledged <= set(copied), f"lost acknowledged writes: {sorted(acknowledged - set(copied))}"
        assert not set(copied) & refused, "a refused write reached the target"
        assert set(copied) <= acknowledged | unknown
        total = cluster.query("lamassu", "SELECT count(*) FROM ca.certificates")[0][0]
        assert total == before + len(copied)
        # The legacy database holds exactly what the target holds: nothing was written after the snapshot.
        legacy = {
            key
            for (key,) in cluster.query(
                "ca", "SELECT serial_number FROM certificates WHERE serial_number LIKE %s", (PREFIX + "%",)
            )
        }
        assert legacy == set(copied)

        assert legacy_write_error(cluster) == "ReadOnlySqlTransaction", "the legacy database stays frozen"
        print(
            f"writes during the upgrade: {len(acknowledged)} acknowledged, {len(refused)} refused, "
            f"{len(unknown)} unknown, {writer.connects} connections; copied {len(copied)}, lost 0, duplicated 0"
        )
