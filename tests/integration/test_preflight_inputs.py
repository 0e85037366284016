"""Every input of a run is checked by preflight, before the services are stopped and before the first change: each
everyday mistake given to upgrade.yml is refused with a message naming it, and nothing changed on the server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.ansible import run_playbook, write_inventory
from tests.harness.collection import ROOT
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import throwaway_cluster
from tests.harness.snapshot import server_state, state_differences

SERVICES = ("ca", "va")
WATCHED = ["lamassu", "pki", *SERVICES]


@pytest.fixture(scope="module")
def cluster():
    with throwaway_cluster() as server:
        build_legacy(server, scale=0.001, services=SERVICES)
        server.execute("postgres", "CREATE ROLE operator LOGIN SUPERUSER PASSWORD 'right-password'")
        yield server


def bad_inputs(tmp: Path) -> dict[str, tuple[dict, str]]:
    """case -> (host variables, what the refusal must say)."""
    not_a_dir = tmp / "reports-file"
    not_a_dir.write_text("a file where the reports should go\n")
    return {
        "missing migrations directory": (
            {"lamassu_migrations_dir": str(tmp / "no-such-checkout")},
            "no-such-checkout does not exist: give a Lamassu checkout or its engines/storage/postgres/migrations",
        ),
        "misspelled service": (
            {"lamassu_services": ["ca", "devicemanger"]},
            "'devicemanger' is not a Lamassu service: did you mean 'devicemanager'?",
        ),
        "reserved database name": (
            {"lamassu_pg_database": "pg_lamassu"},
            "The unified database name 'pg_lamassu' starts with 'pg_'",
        ),
        "database named like a legacy one": (
            {"lamassu_pg_database": "va"},
            "The unified database 'va' is the name of a legacy database of the run",
        ),
        "report directory is a file": (
            {"lamassu_report_dir": str(not_a_dir)},
            f"report directory {not_a_dir} of the controller is not a writable directory",
        ),
        "missing TLS file": (
            {"lamassu_pg_ca_cert": str(tmp / "no-ca.pem")},
            f"TLS file(s) of the connection missing on db1: lamassu_pg_ca_cert = {tmp / 'no-ca.pem'}",
        ),
        "wrong password": (
            {"lamassu_pg_user": "operator", "lamassu_pg_password": "wrong-password"},
            "authentication failed (wrong user or password; in the playbooks lamassu_pg_user and lamassu_pg_password)",
        ),
    }


CASES = (
    "missing migrations directory",
    "misspelled service",
    "reserved database name",
    "database named like a legacy one",
    "report directory is a file",
    "missing TLS file",
    "wrong password",
)


@pytest.mark.parametrize("case", CASES)
def test_a_bad_input_is_refused_by_preflight_and_changes_nothing(cluster, tmp_path, case):
    host_vars, expected = bad_inputs(tmp_path)[case]
    stopped = tmp_path / "stopped"
    hooks = tmp_path / "hooks.yml"
    hooks.write_text(
        json.dumps([{"name": "Record the hook", "ansible.builtin.copy": {"content": "x", "dest": str(stopped)}}])
    )
    defaults = {
        "lamassu_services": list(SERVICES),
        "lamassu_report_dir": str(tmp_path / "reports"),
        "service_control_hooks_file": str(hooks),
    }
    inventory = write_inventory(tmp_path / "inventory.json", cluster, **(defaults | host_vars))
    before = server_state(cluster, WATCHED)

    run = run_playbook(ROOT / "playbooks" / "upgrade.yml", "-i", str(inventory))

    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-5000:]
    # A wrong password stops the run at its first connection (the server-wide lock), before preflight.
    assert case == "wrong password" or "Preflight found" in out, out[-5000:]
    assert expected in out, out[-5000:]
    assert not stopped.exists(), "a service was stopped before preflight passed"
    assert not state_differences(before, server_state(cluster, WATCHED))  # nothing created, frozen or copied
