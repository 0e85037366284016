# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The id of a run: the UTC start time of its ``ansible-playbook`` process (``RUN_ID_FORMAT``).

Every process of the run (the main one and its forks) reads the same start time, so every play, every ``serial``
batch and every host of the run gets the same id, with no play that ``--limit`` could skip having to name it.
The start time is read from ``/proc`` on Linux, from ``ps`` elsewhere; the current time is the last resort.
"""

from __future__ import annotations

import datetime
import os
import subprocess

from ansible_collections.lamassuiot.postgres.plugins.module_utils.report_runs import RUN_ID_FORMAT

# man 5 proc, /proc/<pid>/stat: field 22 is the start time in clock ticks after boot (fields count from 1).
STAT_START_TIME_FIELD = 22
# The fields after the command name (field 2, in parentheses) start with field 3.
STAT_FIELDS_AFTER_COMMAND = 3
PS_LSTART_FORMAT = "%a %b %d %H:%M:%S %Y"


def start_ticks(stat: str) -> int:
    """Field 22 of a ``/proc/<pid>/stat`` line; the command name before it may hold spaces and parentheses."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[STAT_START_TIME_FIELD - STAT_FIELDS_AFTER_COMMAND])


def boot_time(proc_stat: str) -> int:
    """The ``btime`` of ``/proc/stat``: when the system booted, in seconds since the epoch."""
    for line in proc_stat.splitlines():
        key, _separator, value = line.partition(" ")
        if key == "btime":
            return int(value)
    raise ValueError("/proc/stat has no btime line")


def started_from_proc(stat: str, proc_stat: str, clock_ticks: int) -> datetime.datetime:
    """The start of a process from its ``/proc/<pid>/stat`` and the system's ``/proc/stat``, in UTC."""
    seconds = boot_time(proc_stat) + start_ticks(stat) / clock_ticks
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def started_from_ps(lstart: str) -> datetime.datetime:
    """The start of a process from ``ps -o lstart=`` in the C locale (``Mon Jan  5 10:11:12 2026``, local time)."""
    local = datetime.datetime.strptime(" ".join(lstart.split()), PS_LSTART_FORMAT)
    return local.astimezone(datetime.UTC)


def process_started(pid: int, proc: str = "/proc") -> datetime.datetime | None:
    """When process ``pid`` started, in UTC; None when neither ``/proc`` nor ``ps`` tells."""
    try:
        with open(os.path.join(proc, str(pid), "stat"), encoding="utf-8") as stat:
            process = stat.read()
        with open(os.path.join(proc, "stat"), encoding="utf-8") as proc_stat:
            system = proc_stat.read()
        return started_from_proc(process, system, os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        pass
    try:
        lstart = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            env={**os.environ, "LC_ALL": "C"},
        ).stdout
        return started_from_ps(lstart)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def run_id(pid: int, proc: str = "/proc") -> str:
    """The id of the run whose main process is ``pid``: its start time, else (no way to read it) the current time."""
    started = process_started(pid, proc) or datetime.datetime.now(datetime.UTC)
    return started.strftime(RUN_ID_FORMAT)
