"""The playbooks on real managed hosts: Debian containers reached over SSH, each with its own PostgreSQL.

The modules run on each host's own Python and psycopg2 (Debian 12: 3.11 and 2.9.5; Debian 11: 3.9 and 2.8.6 with
PostgreSQL 13), not the controller's. One host is set up the usual way of PostgreSQL hosts: a sudo user,
``become_user: postgres``, peer authentication on the socket, pipelining on and no ``acl`` package.
(tests/harness/docker_hosts.py builds the hosts; without a Docker engine these tests are skipped, saying why.)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import docker_hosts
from tests.harness.ansible import ansible_env, run_playbook
from tests.harness.fixture import build_legacy
from tests.integration.test_playbooks import (
    PLAYBOOKS,
    SERVICES,
    accepts_writes,
    copied_schemas,
    databases,
    latest_report,
    output,
    recap,
    write_migrations,
)

SCALE = 0.0001


@pytest.fixture(scope="module")
def engine():
    try:
        docker_hosts.ensure_engine()
    except docker_hosts.DockerUnavailable as exc:
        pytest.skip(f"no Docker engine for the managed-host tests: {exc}")


def host_vars(host: docker_hosts.Host, reports: Path, setup: str) -> dict:
    """Inventory variables of one host: ``root`` (SSH as root, PostgreSQL over TCP with a password) or ``become``
    (SSH as the sudo user deploy, become postgres, peer authentication on the socket, pipelining, no acl)."""
    common = {
        "lamassu_report_dir": str(reports),
        "lamassu_services": list(SERVICES),
        "lamassu_pg_port": host.cluster.port,
    }
    if setup == "become":
        return {
            **host.ssh_vars("deploy"),
            **common,
            "ansible_become": True,
            "ansible_become_user": "postgres",
            "ansible_pipelining": True,
            "lamassu_pg_host": "/var/run/postgresql",
        }
    return {
        **host.ssh_vars("root"),
        **common,
        "lamassu_pg_host": "127.0.0.1",
        "lamassu_pg_password": host.cluster.password,
    }


def write_inventory(path: Path, groups: dict[str, dict[str, dict]], **group_vars) -> Path:
    children = {group: {"hosts": hosts} for group, hosts in groups.items()}
    path.write_text(json.dumps({"lamassu_postgres": {"children": children, "vars": group_vars}}, indent=2))
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    """ansible-playbook with ``args``: a playbook of the checkout, or a command line as the report prints it."""
    return run_playbook(*args)


def printed_command(report: str, words: str) -> list[str]:
    """The arguments of the ``ansible-playbook`` command that the report prints after ``words``."""
    line = next(line for line in report.splitlines() if words in line)
    command = re.search(r"(ansible-playbook lamassuiot\.postgres\.\S+.*?)(?:`|$)", line)
    assert command, line
    return shlex.split(command.group(1))[1:]


def test_a_fleet_over_ssh_runs_the_whole_cycle_with_limit_and_the_printed_commands(engine, tmp_path):
    reports = tmp_path / "reports"
    specs = (("deb12", "bookworm"), ("deb11", "bullseye"), ("deb12b", "bookworm"))
    with docker_hosts.hosts(tmp_path, *specs) as fleet:
        for host in fleet.values():
            build_legacy(host.cluster, scale=SCALE, services=SERVICES)
        migrations = write_migrations(tmp_path / "migrations")
        good = {
            "deb12": host_vars(fleet["deb12"], reports, "root"),
            "deb11": host_vars(fleet["deb11"], reports, "root"),
            "deb12b": host_vars(fleet["deb12b"], reports, "become"),
        }
        inventory_path = tmp_path / "inventory.json"

        def inventory(**overrides: dict) -> str:
            hosts = {name: {**values, **overrides.get(name, {})} for name, values in good.items()}
            groups = {"dev": {"deb12": hosts["deb12"]}, "staging": {"deb11": hosts["deb11"]}}
            groups["prod"] = {"deb12b": hosts["deb12b"]}
            return str(write_inventory(inventory_path, groups, lamassu_migrations_dir=str(migrations)))

        # A canary rollout, one host per batch; the Debian 11 host cannot log in to its server (a wrong password).
        stopped = run(
            PLAYBOOKS / "upgrade.yml",
            "-i",
            inventory(deb11={"lamassu_pg_password": "wrong"}),
            "-e",
            '{"lamassu_serial": [1, 1, 1]}',
        )
        assert stopped.returncode != 0, output(stopped)
        assert copied_schemas(fleet["deb12"].cluster) == sorted(SERVICES), output(stopped)
        assert "lamassu" not in databases(fleet["deb11"].cluster)
        assert "lamassu" not in databases(fleet["deb12b"].cluster) and "deb12b" not in recap(stopped)
        report = latest_report(reports, "upgrade")

        # The operator fixes the password and runs the commands the report prints, as printed.
        inventory()
        retried = run(*printed_command(report, "Fix what failed on deb11"))
        assert retried.returncode == 0, output(retried)
        assert set(recap(retried)) == {"deb11"}, output(retried)
        assert copied_schemas(fleet["deb11"].cluster) == sorted(SERVICES)
        went_on = run(*printed_command(report, "The rollout stopped before deb12b"))
        assert went_on.returncode == 0, output(went_on)
        for name, host in fleet.items():
            assert copied_schemas(host.cluster) == sorted(SERVICES), name
            assert not accepts_writes(host.cluster, "va"), name
        assert recap(went_on)["deb12"]["changed"] == 0 and recap(went_on)["deb12b"]["changed"] > 0

        again = run(PLAYBOOKS / "upgrade.yml", "-i", inventory_path)
        assert again.returncode == 0, output(again)
        assert all(counts["changed"] == 0 for counts in recap(again).values()), output(again)

        status = run(PLAYBOOKS / "status.yml", "-i", inventory_path, "--limit", "deb11")
        assert status.returncode == 0 and set(recap(status)) == {"deb11"}, output(status)
        assert "| va | migrated |" in latest_report(reports, "status")

        # The migrations ran on the schemas: going back to the legacy databases drops what they changed, on request.
        rolled_back = run(
            PLAYBOOKS / "rollback.yml",
            "-i",
            inventory_path,
            "--limit",
            "deb12b",
            "-e",
            "lamassu_rollback_discard_changes=true",
        )
        assert rolled_back.returncode == 0 and set(recap(rolled_back)) == {"deb12b"}, output(rolled_back)
        assert copied_schemas(fleet["deb12b"].cluster) == [] and accepts_writes(fleet["deb12b"].cluster, "va")
        assert copied_schemas(fleet["deb12"].cluster) == sorted(SERVICES)

        upgraded = run(PLAYBOOKS / "upgrade.yml", "-i", inventory_path, "--limit", "deb12b")
        assert upgraded.returncode == 0, output(upgraded)
        assert copied_schemas(fleet["deb12b"].cluster) == sorted(SERVICES)

        cleaned = run(
            PLAYBOOKS / "cleanup.yml", "-i", inventory_path, "--limit", "deb11", "-e", "legacy_cleanup_confirm=true"
        )
        assert cleaned.returncode == 0 and set(recap(cleaned)) == {"deb11"}, output(cleaned)
        assert not set(SERVICES) & databases(fleet["deb11"].cluster)
        assert set(SERVICES) <= databases(fleet["deb12"].cluster)


def test_without_pipelining_nor_acl_the_first_step_names_both_fixes_and_changes_nothing(engine, tmp_path):
    with docker_hosts.hosts(tmp_path, ("deb12c", "bookworm")) as fleet:
        host = fleet["deb12c"]
        build_legacy(host.cluster, scale=SCALE, services=("va",))
        values = {**host_vars(host, tmp_path / "reports", "become"), "ansible_pipelining": False}
        inventory = write_inventory(tmp_path / "inventory.json", {"dev": {"deb12c": values}})
        refused = run(PLAYBOOKS / "upgrade.yml", "-i", inventory)
        assert refused.returncode != 0, output(refused)
        text = output(refused)
        assert "without pipelining, and the host has no setfacl (the acl package)" in text, text
        assert "Turn pipelining on" in text and "install the acl package" in text
        assert "lamassu" not in databases(host.cluster) and accepts_writes(host.cluster, "va")
        # rollback and cleanup begin with the lock: the same check, before it.
        for name in ("rollback.yml", "cleanup.yml"):
            refused = run(PLAYBOOKS / name, "-i", inventory)
            assert refused.returncode != 0 and "Turn pipelining on" in output(refused), output(refused)


def test_a_killed_controller_frees_the_server_within_its_lease(engine, tmp_path):
    """``kill -9`` of ansible-playbook (a cancelled CI job) in the middle of the copy, over SSH: the lock's holder
    stops being renewed, and a rollback a lease later runs."""
    lease = 45  # long enough that a busy machine reaches the copy well within it
    with docker_hosts.hosts(tmp_path, ("deb12k", "bookworm")) as fleet:
        host = fleet["deb12k"]
        build_legacy(host.cluster, scale=SCALE, services=("va",))
        values = {**host_vars(host, tmp_path / "reports", "root"), "lamassu_services": ["va"]}
        inventory = write_inventory(tmp_path / "inventory.json", {"dev": {"deb12k": values}}, lamassu_lock_lease=lease)
        # The module's environment on the host (sshd reads /etc/environment through PAM): the copy pauses at its data.
        pause = "/tmp/lamassu-pause"
        host.exec(
            "sh",
            "-c",
            f"printf 'LAMASSU_DBCOPY_PAUSE_AT=data\\nLAMASSU_DBCOPY_PAUSE_FILE={pause}\\n' >> /etc/environment",
        )
        controller = subprocess.Popen(
            [
                os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                str(PLAYBOOKS / "upgrade.yml"),
                "-i",
                str(inventory),
            ],
            env=ansible_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while host.exec("test", "-e", pause).returncode != 0:
            assert time.monotonic() < deadline and controller.poll() is None, "the copy never reached its pause"
            time.sleep(0.5)
        os.killpg(controller.pid, signal.SIGKILL)
        controller.wait()
        killed_at = time.monotonic()
        host.exec("sh", "-c", f"sed -i '/LAMASSU_DBCOPY/d' /etc/environment; rm -f {pause}")

        refused = run(PLAYBOOKS / "rollback.yml", "-i", inventory)
        assert refused.returncode != 0 and "lamassu_break_lock" in output(refused), output(refused)

        while True:
            rolled_back = run(PLAYBOOKS / "rollback.yml", "-i", inventory)
            if rolled_back.returncode == 0 or time.monotonic() - killed_at > lease + 60:
                break
            time.sleep(5)
        assert rolled_back.returncode == 0, output(rolled_back)
        assert time.monotonic() - killed_at < lease + 60
        assert copied_schemas(host.cluster) == [] and accepts_writes(host.cluster, "va")
