"""Fleet bench: ``upgrade.yml`` and ``status.yml`` on many small hosts at once, and what the controller spends.

    python -m bench.fleet --hosts 20 --scale 0.01 --out bench/output/fleet

Starts ``--hosts`` throwaway clusters plus one more for the single-host runs (small ``shared_buffers``), seeds the
six legacy Lamassu databases in each (``build_legacy``), then runs, with ``--forks`` (default 10):

* on the one extra host: ``upgrade.yml`` (first run), ``upgrade.yml`` again (nothing to do), ``status.yml``;
* on the fleet: the same three runs, every host in group ``lamassu_postgres`` of one inventory.

Per run: wall time around ``ansible-playbook``; CPU of its whole process tree (``RUSAGE_CHILDREN`` delta around
the waited-for process); the module processes' own wall and CPU, each written by GNU time as it exits (every
host's ``ansible_python_interpreter`` is a wrapper ``exec /usr/bin/time -a -o FILE -f '<host> %e %U %S %C' python``);
"controller CPU" is the tree's CPU minus the module processes' (what ``ansible-playbook`` and its workers spend,
the part a real controller pays whatever the hosts); per host, from the callback ``fleet_timer``
(``bench/callback_plugins``): the wall time from its first task's start to its last task's result, and its recap.
Writes ``fleet-<stamp>.json`` and ``.md`` (and the Ansible output of every run) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.harness.collection import ROOT, ensure_collection_path

ensure_collection_path()

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import SERVICES  # noqa: E402
from bench.measure import TIME, machine_info  # noqa: E402
from tests.harness.ansible import run_playbook  # noqa: E402
from tests.harness.demo import MIGRATIONS  # noqa: E402
from tests.harness.fixture import build_legacy  # noqa: E402
from tests.harness.pgcluster import Cluster, start_cluster  # noqa: E402

OUTPUT = ROOT / "bench" / "output" / "fleet"
PLAYBOOKS = ROOT / "playbooks"
# Small servers: twenty-one of them share the machine.
SETTINGS = {"shared_buffers": "16MB", "max_connections": "30", "maintenance_work_mem": "32MB", "max_wal_size": "256MB"}
TIME_FILE_ENV = "LAMASSU_FLEET_TIME_FILE"
SINGLE = "single"
RUNS = (("first", "upgrade.yml"), ("noop", "upgrade.yml"), ("status", "status.yml"))
TIMER_FILE_ENV = "LAMASSU_FLEET_TIMER_FILE"  # bench/callback_plugins/fleet_timer.py writes there
CALLBACKS = ROOT / "bench" / "callback_plugins"
# (label, run, figure, limit): the targets of issue 16 for one host and for the fleet.
TARGETS = (
    ("no-op upgrade.yml, one host, wall s", "single_noop", "wall_s", 3.0),
    ("no-op upgrade.yml, fleet, controller CPU s per host", "fleet_noop", "controller_cpu_per_host_s", 1.5),
    ("first upgrade.yml, one host, wall minus module time s", "single_first", "wall_minus_module_s", 4.0),
    ("no-op status.yml, one host, wall s", "single_status", "wall_s", 2.0),
)


def host_names(count: int) -> list[str]:
    return [f"db{index:02d}" for index in range(1, count + 1)]


def start_fleet(count: int, scale: float, services: Sequence[str], workers: int = 4) -> list[Cluster]:
    """``count`` clusters with the legacy databases at ``scale``, started and seeded ``workers`` at a time."""

    def one(_index: int) -> Cluster:
        cluster = start_cluster(settings=SETTINGS)
        try:
            build_legacy(cluster, scale=scale, services=services, workers=2)
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, index) for index in range(count)]
    clusters = [future.result() for future in futures if not future.exception()]
    errors = [future.exception() for future in futures if future.exception()]
    if errors:
        destroy(clusters)
        raise errors[0]
    return clusters


def destroy(clusters: list[Cluster]) -> None:
    for cluster in clusters:
        cluster.destroy()


def timed_interpreter(work: Path, host: str) -> Path:
    """The host's Python for modules: GNU time appends ``<host> wall user sys command`` of each module process."""
    wrapper = work / f"python-{host}"
    wrapper.write_text(
        f'#!/bin/sh\nexec {TIME} -a -o "${TIME_FILE_ENV}" -f "{host} %e %U %S %C" {shlex.quote(sys.executable)} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def write_inventory(path: Path, hosts: dict[str, Cluster], services: Sequence[str], work: Path) -> Path:
    """Every host in group ``lamassu_postgres``, run locally through its timed interpreter."""
    inventory = {
        name: {
            "ansible_connection": "local",
            "ansible_python_interpreter": str(timed_interpreter(work, name)),
            "lamassu_pg_host": cluster.host,
            "lamassu_pg_port": cluster.port,
            "lamassu_pg_user": cluster.user,
            "lamassu_migrations_dir": str(MIGRATIONS),
            "lamassu_services": list(services),
        }
        for name, cluster in hosts.items()
    }
    path.write_text(json.dumps({"lamassu_postgres": {"hosts": inventory}}, indent=2))
    return path


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def module_processes(path: Path) -> list[dict]:
    """The module processes GNU time recorded: host, wall, CPU and module name (``AnsiballZ_<name>.py``)."""
    found = []
    for line in path.read_text().splitlines() if path.exists() else []:
        host, wall, user, system, command = line.split(" ", 4)
        module = re.search(r"AnsiballZ_(\w+)\.py", command)
        found.append(
            {
                "host": host,
                "wall_s": float(wall),
                "cpu_s": float(user) + float(system),
                "module": module.group(1) if module else command,
            }
        )
    return found


def timed_playbook(playbook: str, inventory: Path, work: Path, label: str, forks: int) -> dict:
    """One ``ansible-playbook`` run, measured (see the module docstring); its output goes to ``<label>.log``."""
    times, timer = work / f"{label}.times", work / f"{label}.hosts.json"
    args = ["-i", str(inventory), "-f", str(forks), "-e", f"lamassu_report_dir={work / label}-reports"]
    env = {
        TIME_FILE_ENV: str(times),
        TIMER_FILE_ENV: str(timer),
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "fleet_timer",
    }
    load, cpu, began = os.getloadavg()[0], children_cpu(), time.monotonic()
    proc = run_playbook(PLAYBOOKS / playbook, *args, env=env)
    wall, cpu = time.monotonic() - began, children_cpu() - cpu
    (work / f"{label}.log").write_text(proc.stdout + proc.stderr)
    hosts = json.loads(timer.read_text()) if timer.exists() else {}
    hosts.pop("localhost", None)
    modules = module_processes(times)
    module_wall = {host: round(sum(m["wall_s"] for m in modules if m["host"] == host), 2) for host in hosts}
    module_cpu = sum(m["cpu_s"] for m in modules)
    by_module: dict[str, dict] = {}
    for m in modules:
        entry = by_module.setdefault(m["module"], {"processes": 0, "wall_s": 0.0, "cpu_s": 0.0})
        entry["processes"] += 1
        entry["wall_s"] = round(entry["wall_s"] + m["wall_s"], 2)
        entry["cpu_s"] = round(entry["cpu_s"] + m["cpu_s"], 2)
    return {
        "playbook": playbook,
        "hosts": len(hosts),
        "forks": forks,
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "load_before": round(load, 2),
        "cpu_s": round(cpu, 2),
        "module_processes": len(modules),
        "module_cpu_s": round(module_cpu, 2),
        "controller_cpu_s": round(cpu - module_cpu, 2),
        "controller_cpu_per_host_s": round((cpu - module_cpu) / max(len(hosts), 1), 2),
        "module_wall_s": module_wall,
        "wall_minus_module_s": round(wall - max(module_wall.values(), default=0.0), 2),
        "host_wall_s": {host: facts["wall_s"] for host, facts in hosts.items()},
        "changed": {host: facts["changed"] for host, facts in hosts.items()},
        "failed": {host: facts["failures"] + facts["unreachable"] for host, facts in hosts.items()},
        "modules": by_module,
        "log": str(work / f"{label}.log"),
    }


def run_fleet_bench(
    hosts: int = 20,
    scale: float = 0.01,
    services: Sequence[str] = SERVICES,
    out: Path = OUTPUT,
    forks: int = 10,
    seed_workers: int = 4,
    single: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Start and seed the clusters, run the measured playbooks, destroy the clusters; return the report.

    With ``single`` false the single-host runs (and the targets measured on them) are left out.
    """
    if not os.access(TIME, os.X_OK):
        raise RuntimeError(f"{TIME} (GNU time) is needed to time the module processes: apt-get install time")
    out = Path(out).resolve()
    work = out / time.strftime("run-%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    clusters = start_fleet(hosts + single, scale, services, seed_workers)
    try:
        seed_seconds = time.monotonic() - began
        log(f"{len(clusters)} clusters started and seeded at scale {scale:g} in {seed_seconds:.0f} s")
        groups = {"fleet": dict(zip(host_names(hosts), clusters[single:], strict=True))}
        if single:
            groups = {"single": {SINGLE: clusters[0]}, **groups}
        runs = {}
        for group, members in groups.items():
            inventory = write_inventory(work / f"{group}.json", members, services, work)
            for kind, playbook in RUNS:
                label = f"{group}_{kind}"
                runs[label] = run = timed_playbook(playbook, inventory, work, label, forks)
                log(f"{label}: {playbook} rc {run['rc']}, {run['wall_s']:.1f} s, CPU {run['cpu_s']:.1f} s")
        machine = machine_info(clusters[0])
    finally:
        destroy(clusters)
    return {
        "hosts": hosts,
        "scale": scale,
        "services": list(services),
        "forks": forks,
        "settings": SETTINGS,
        "seed_seconds": round(seed_seconds, 1),
        "machine": machine,
        "runs": runs,
        "targets": [
            {"target": label, "measured": runs[run][figure], "limit": limit, "met": runs[run][figure] <= limit}
            for label, run, figure, limit in TARGETS
            if run in runs
        ],
        "work": str(work),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def markdown(report: dict) -> str:
    """The runs and the targets as Markdown tables."""
    lines = [
        f"{report['hosts']} hosts + 1 single host, legacy databases of {len(report['services'])} services at scale "
        f"{report['scale']:g} on each (seeded in {report['seed_seconds']:.0f} s), forks {report['forks']}; "
        f"finished {report['finished']}.",
        "",
        "| run | playbook | hosts | rc | changed | wall s | load | CPU s (tree) | controller CPU s | per host | "
        "module processes | module CPU s | host wall s (median / max) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, run in report["runs"].items():
        changed = sum(run["changed"].values())
        walls = [wall for wall in run["host_wall_s"].values() if wall is not None]
        spread = f"{statistics.median(walls):.1f} / {max(walls):.1f}" if walls else "-"
        lines.append(
            f"| {label} | {run['playbook']} | {run['hosts']} | {run['rc']} | {changed} | {run['wall_s']:.2f} | {run['load_before']:.2f} "
            f"| {run['cpu_s']:.2f} | {run['controller_cpu_s']:.2f} | {run['controller_cpu_per_host_s']:.2f} "
            f"| {run['module_processes']} | {run['module_cpu_s']:.2f} | {spread} |"
        )
    lines += ["", "| target | measured | limit | met |", "|---|---:|---:|---|"]
    for target in report["targets"]:
        met = "yes" if target["met"] else "no"
        lines.append(f"| {target['target']} | {target['measured']:.2f} | {target['limit']:.1f} | {met} |")
    machine = report["machine"]
    lines += [
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}, PostgreSQL {machine['postgres_settings']['server_version']}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=20, help="hosts of the fleet (one more runs alone)")
    parser.add_argument("--scale", type=float, default=0.01, help="legacy fixture scale per host, 1.0 is about 1 GB")
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated legacy databases per host")
    parser.add_argument("--forks", type=int, default=10, help="ansible-playbook --forks")
    parser.add_argument("--seed-workers", type=int, default=4, help="clusters started and seeded at once")
    parser.add_argument("--out", default=str(OUTPUT), help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    services = tuple(args.services.split(","))
    report = run_fleet_bench(args.hosts, args.scale, services, Path(args.out), args.forks, args.seed_workers)
    report["command"] = "python -m bench.fleet " + " ".join(argv if argv is not None else sys.argv[1:])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out).resolve()
    (out / f"fleet-{stamp}.json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    (out / f"fleet-{stamp}.md").write_text(text + "\n")
    print(text)
    return 0 if all(run["rc"] == 0 for run in report["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
