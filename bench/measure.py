"""What the bench measures besides wall time: the module's peak RSS (GNU time or a psutil sampler) and the machine."""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.collection import ensure_collection_path

ensure_collection_path()

import psutil  # noqa: E402

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import MAINTENANCE_DATABASE  # noqa: E402
from tests.harness.pgcluster import Cluster  # noqa: E402

MODULE_PROCESS = "AnsiballZ_postgres_db_to_schema"
TIME = "/usr/bin/time"  # GNU time: the module's peak RSS without polling; psutil sampling when missing
RSS_FILE_ENV = "LAMASSU_BENCH_RSS_FILE"
SETTINGS_SHOWN = (
    "server_version",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "max_parallel_maintenance_workers",
    "max_parallel_workers",
    "max_worker_processes",
    "wal_level",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "max_wal_size",
    "checkpoint_timeout",
)


@dataclass
class Measurement:
    approach: str
    seconds: float
    ok: bool
    problems: list[str] = field(default_factory=list)
    estimated: bool = False
    skipped: bool = False
    peak_rss_mb: float | None = None
    load_before: float = 0.0
    notes: str = ""
    detail: dict = field(default_factory=dict)


class RssSampler:
    """Peak resident set (``VmHWM``) of the module processes under ``ansible-playbook``, sampled in a thread.

    A module process is a Python interpreter under ``ansible-playbook`` that is not one of its own workers:
    ``python AnsiballZ_postgres_db_to_schema.py``, or a bare ``python`` reading the module from its standard
    input when Ansible pipelines.
    """

    def __init__(self, root_pid: int, interval: float = 0.25):
        self.root = psutil.Process(root_pid)
        self.interval = interval
        self.peak_kb = 0
        self.processes = 0
        self._seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                for proc in self.root.children(recursive=True):
                    with contextlib.suppress(psutil.Error, OSError, ValueError):
                        if not _is_module_process(proc.cmdline()):
                            continue
                        self._seen.add(proc.pid)
                        self.peak_kb = max(self.peak_kb, _high_water_kb(proc.pid))
            self._stop.wait(self.interval)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        self.processes = len(self._seen)
        return round(self.peak_kb / 1024, 1) if self.peak_kb else None


def peak_from_time(path: Path) -> float | None:
    """The largest maximum RSS (kB, GNU time's %M) of the module processes recorded in ``path``, in MB."""
    if not path.exists():
        return None
    peaks = [int(line.split()[0]) for line in path.read_text().splitlines() if MODULE_PROCESS in line]
    return round(max(peaks) / 1024, 1) if peaks else None


def _is_module_process(cmdline: list[str]) -> bool:
    if not cmdline or not os.path.basename(cmdline[0]).startswith("python"):
        return False
    return not any("ansible-playbook" in part for part in cmdline[1:]) and (
        len(cmdline) == 1 or MODULE_PROCESS in cmdline[1]
    )


def _high_water_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def timed_interpreter(work: Path) -> Path:
    """A Python for the module that runs under GNU time (the module of an async job is not a child of ``time``)."""
    wrapper = work / "python-timed"
    if not wrapper.exists():
        wrapper.write_text(
            f'#!/bin/sh\nexec {TIME} -a -o "${RSS_FILE_ENV}" -f "%M %C" {shlex.quote(sys.executable)} "$@"\n'
        )
        wrapper.chmod(0o755)
    return wrapper


def machine_info(cluster: Cluster) -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    settings = {}
    with contextlib.closing(cluster.connect(MAINTENANCE_DATABASE)) as conn, conn.cursor() as cur:
        for name in SETTINGS_SHOWN:
            cur.execute(f"SHOW {name}")
            settings[name] = cur.fetchone()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres_settings": settings,
        "pgcopydb": tool_version([shutil.which("pgcopydb") or "pgcopydb", "--version"], "pgcopydb version"),
    }


def tool_version(cmd: list[str], marker: str) -> str:
    with contextlib.suppress(OSError):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        found = [line for line in (proc.stdout + proc.stderr).splitlines() if marker in line]
        return found[0][found[0].index(marker) :].split(" from ")[0] if found else "unknown version"
    return "missing"
