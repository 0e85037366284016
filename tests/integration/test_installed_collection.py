"""Installed like any collection: the built tarball installed into a collections path of an operator's own project,
its playbooks run by their collection names from another directory, against a throwaway server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.harness.ansible import ansible_env, write_inventory
from tests.harness.collection import ROOT
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import throwaway_cluster

BIN = Path(sys.executable).parent


def galaxy(*args: str, cwd: Path, env: dict) -> None:
    proc = subprocess.run(
        [str(BIN / "ansible-galaxy"), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_built_tarball_runs_status_by_its_collection_name(tmp_path):
    project = tmp_path / "my-ansible-project"
    collections = project / "collections"
    project.mkdir()
    env = ansible_env({"ANSIBLE_COLLECTIONS_PATH": str(collections)})
    galaxy("collection", "build", str(ROOT), "--output-path", str(tmp_path / "dist"), cwd=tmp_path, env=env)
    (tarball,) = (tmp_path / "dist").glob("lamassuiot-postgres-*.tar.gz")
    (project / "requirements.yml").write_text(json.dumps({"collections": [{"name": str(tarball), "type": "file"}]}))
    galaxy("collection", "install", "--offline", "-r", "requirements.yml", "-p", str(collections), cwd=project, env=env)
    assert (collections / "ansible_collections" / "lamassuiot" / "postgres" / "playbooks" / "status.yml").is_file()

    with throwaway_cluster() as cluster:
        build_legacy(cluster, scale=0.001, services=("va",))
        write_inventory(project / "inventory.json", cluster, lamassu_services=["va"])
        run = subprocess.run(
            [str(BIN / "ansible-playbook"), "lamassuiot.postgres.status", "-i", "inventory.json"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert str(ROOT) not in run.stdout, "the run must use the installed copy, not this checkout"
    reports = list((project / "reports").glob("lamassu-status-*.md"))
    assert reports, run.stdout[-3000:]
    assert "| va |" in reports[0].read_text()
