"""``make demo``: the upgrade on a local throwaway PostgreSQL, with Ansible's normal output.

The first run starts a cluster under ``<dir>/pg`` and builds the legacy Lamassu
layout in it; every later run reuses both, so a second ``make demo`` shows the
idempotent re-run (``changed=0``). ``make demo-clean`` removes everything.
Where the ``postgres`` OS user cannot reach the checkout (a clone in a 0700
directory, a path with a space), the cluster's files live under
``/var/tmp/lamassu-pg-<uid>/`` instead; ``<dir>/pg/cluster.json`` says where.

The migrate phase runs the example tree ``docs/examples/migrations``: placeholders
for every version the fixture has applied, and a few newer migrations that the
first run applies and the second finds already applied.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .ansible import ansible_env
from .collection import ROOT, ensure_collection_path
from .pgcluster import STATE_FILE, Cluster, ClusterError, load_cluster, start_cluster

DEMO_SCALE = 0.05  # about 50 MB of legacy data
PLAYBOOKS = ("upgrade.yml", "status.yml")
MIGRATIONS = ROOT / "docs" / "examples" / "migrations"
PSQL_SCHEMA = "ca"
FIXTURE_MARKER = "legacy-layout.json"  # written once the legacy layout is complete


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
                    "lamassu_migrations_dir": str(MIGRATIONS),
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
    state = "started" if created else "reused"
    print(f"PostgreSQL {cluster.version} on {cluster.host}:{cluster.port} ({state}, data in {cluster.data_dir})")
    marker = directory / FIXTURE_MARKER
    if marker.exists():
        print(f"Legacy Lamassu layout: built by an earlier run ({marker}); make demo-clean starts afresh")
    else:
        from .fixture import build_legacy

        print(f"Building the legacy Lamassu layout at scale {scale:g} ...", flush=True)
        # A reused cluster without the marker holds an interrupted build: start it over, unified database included.
        cluster.execute("postgres", "DROP DATABASE IF EXISTS lamassu WITH (FORCE)")
        summary = build_legacy(cluster, scale=scale)
        for database, facts in summary.items():
            size = facts["bytes"] / 1e6
            print(f"  {database}: {facts['rows']} rows, {size:.1f} MB, goose version {facts['goose_version']}")
        # Written last: an interrupted build is rebuilt from scratch by the next run.
        marker.write_text(json.dumps({"scale": scale, "databases": summary}, indent=2, default=str))
    inventory = write_inventory(directory, cluster)
    for playbook in PLAYBOOKS:
        path = ROOT / "playbooks" / playbook
        print(f"\n$ ansible-playbook -i {shown(inventory)} playbooks/{playbook}", flush=True)
        proc = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory), str(path)],
            env=ansible_env(),
            cwd=ROOT,
            check=False,
        )
        if proc.returncode:
            return proc.returncode
    reports = latest_reports(directory / "reports")
    if "status" in reports:
        print(f"\n$ cat {shown(reports['status'])}\n")
        print(reports["status"].read_text(encoding="utf-8").rstrip())
    print()
    for title, report in reports.items():
        print(f"Report of the {title} run: {shown(report)} (and .html)")
    print(f"\nConnect to the migrated schema {PSQL_SCHEMA!r} of the unified database:")
    print(f"  {psql_command(cluster, PSQL_SCHEMA)}")
    return 0


def shown(path: Path) -> str:
    """``path`` relative to the checkout when it is inside it (shorter commands to copy)."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def latest_reports(directory: Path) -> dict[str, Path]:
    """The newest Markdown report per playbook (``lamassu-<title>-<run id>.md``; run ids sort by time)."""
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("lamassu-*-*.md")) if directory.is_dir() else []:
        title = path.stem.split("-")[1]
        found[title] = path
    return found


def psql_command(cluster: Cluster, schema: str) -> str:
    """A ready psql command line; libpq needs ``options=-csearch_path=...`` where pgx takes ``search_path``."""
    psql = "psql" if shutil.which("psql") else cluster.tool("psql")
    conninfo = (
        f"host={cluster.host} port={cluster.port} user={cluster.user} dbname=lamassu options=-csearch_path={schema}"
    )
    return f"{psql} '{conninfo}'"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.demo")
    parser.add_argument("action", choices=["run"])
    parser.add_argument("--dir", default=".demo")
    # LAMASSU_DEMO_SCALE: a smaller legacy layout for tests that run the demo (tests/integration/test_clone_location.py).
    parser.add_argument("--scale", type=float, default=float(os.environ.get("LAMASSU_DEMO_SCALE", DEMO_SCALE)))
    args = parser.parse_args(argv)
    try:
        return run(Path(args.dir).resolve(), args.scale)
    except ClusterError as exc:  # the server's own words and what to do, without a traceback
        print(f"make demo: the demo's PostgreSQL cannot run.\n{exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
