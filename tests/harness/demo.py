"""``make demo``: the upgrade on a local throwaway PostgreSQL, with Ansible's normal output.

The first run starts a cluster under ``<dir>/pg`` and builds the legacy Lamassu
layout in it; every later run reuses both, so a second ``make demo`` shows the
idempotent re-run (``changed=0``). ``make demo-clean`` removes everything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from .ansible import ansible_env
from .collection import ROOT, ensure_collection_path
from .pgcluster import STATE_FILE, Cluster, load_cluster, start_cluster

DEMO_SCALE = 0.05  # about 50 MB of legacy data
PLAYBOOKS = ("upgrade.yml", "status.yml")


def cluster_for(directory: Path) -> tuple[Cluster, bool]:
    """The demo's cluster, started if needed; ``True`` when it was created by this call."""
    if (directory / STATE_FILE).exists():
        cluster = load_cluster(str(directory))
        if not os.path.exists(os.path.join(cluster.data_dir, "postmaster.pid")):
            cluster.start()
        return cluster, False
    return start_cluster(str(directory)), True


def write_inventory(directory: Path, cluster: Cluster) -> Path:
    inventory = {
        "lamassu_postgres": {
            "hosts": {
                "demo": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "lamassu_pg_host": cluster.host,
                    "lamassu_pg_port": cluster.port,
                    "lamassu_pg_user": cluster.user,
                    "lamassu_report_dir": str(directory / "reports"),
                }
            }
        }
    }
    path = directory / "inventory.json"
    path.write_text(json.dumps(inventory, indent=2))
    return path


def run(directory: Path, scale: float) -> int:
    ensure_collection_path()
    directory.mkdir(parents=True, exist_ok=True)
    cluster, created = cluster_for(directory / "pg")
    print(f"PostgreSQL {cluster.version} listening on {cluster.host}:{cluster.port} (data in {cluster.data_dir})")
    if created:
        from .fixture import build_legacy

        print(f"Building the legacy Lamassu layout at scale {scale} ...")
        summary = build_legacy(cluster, scale=scale)
        for database, facts in summary.items():
            size = facts["bytes"] / 1e6
            print(f"  {database}: {facts['rows']} rows, {size:.1f} MB, goose version {facts['goose_version']}")
    inventory = write_inventory(directory, cluster)
    for playbook in PLAYBOOKS:
        path = ROOT / "playbooks" / playbook
        if not path.exists():
            continue
        print(f"\n$ ansible-playbook -i {inventory} playbooks/{playbook}", flush=True)
        proc = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory), str(path)],
            env=ansible_env(),
            cwd=ROOT,
            check=False,
        )
        if proc.returncode:
            return proc.returncode
    reports = directory / "reports"
    if reports.exists():
        print(f"\nReports: {reports}")
    print("\nConnect to one migrated schema:")
    print(
        f"  psql 'host={cluster.host} port={cluster.port} user={cluster.user} dbname=lamassu options=-csearch_path=ca'"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.demo")
    parser.add_argument("action", choices=["run"])
    parser.add_argument("--dir", default=".demo")
    parser.add_argument("--scale", type=float, default=DEMO_SCALE)
    args = parser.parse_args(argv)
    return run(Path(args.dir).resolve(), args.scale)


if __name__ == "__main__":
    sys.exit(main())
