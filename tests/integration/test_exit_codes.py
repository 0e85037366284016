"""Exit codes an automation can trust: a forgotten inventory fails every playbook, status.yml fails a host that
cannot be read (unless asked only to report)."""

from __future__ import annotations

import json

import pytest

from tests.harness.ansible import run_playbook, write_inventory
from tests.harness.collection import ROOT
from tests.harness.pgcluster import free_port

PLAYBOOKS = ("upgrade.yml", "status.yml", "rollback.yml", "cleanup.yml")


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_every_playbook_fails_without_hosts_in_the_group(tmp_path, name):
    inventory = tmp_path / "empty.json"
    inventory.write_text(json.dumps({"other_group": {"hosts": {"web1": {}}}}))
    run = run_playbook(ROOT / "playbooks" / name, "-i", str(inventory))
    assert run.returncode != 0, run.stdout[-3000:]
    assert "No host in group lamassu_postgres: give the inventory of an environment with -i" in run.stdout
    assert not (tmp_path / "reports").exists()


def test_status_fails_an_unreadable_host_unless_asked_only_to_report(tmp_path):
    inventory = write_inventory(
        tmp_path / "inventory.json",
        lamassu_pg_host="127.0.0.1",
        lamassu_pg_port=free_port(),  # nothing listens there
        lamassu_report_dir=str(tmp_path / "reports"),
    )
    status = ROOT / "playbooks" / "status.yml"

    failed = run_playbook(status, "-i", str(inventory))
    assert failed.returncode != 0, failed.stdout[-3000:]
    assert "db1: cannot be read: Cannot connect to database" in failed.stdout
    assert '"msg": "db1: UNREACHABLE: Cannot connect to database' in failed.stdout  # the one-line verdict
    assert list((tmp_path / "reports").glob("lamassu-status-*.md")), "the report is written before the failure"

    reported = run_playbook(status, "-i", str(inventory), "-e", "lamassu_status_report_only=true")
    assert reported.returncode == 0, reported.stdout[-3000:]
    assert "db1: cannot be read" not in reported.stdout
    assert "cannot be read: Cannot connect to database" in reported.stdout
