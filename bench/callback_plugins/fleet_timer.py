"""Callback of ``bench/fleet.py``: per host, when its first task started, when its last ended, and its recap.

Enabled with ``ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins ANSIBLE_CALLBACKS_ENABLED=fleet_timer``; writes
``{host: {"first_start", "last_end", "wall_s", "tasks", "ok", "changed", "failures", "unreachable", ...}}`` as
JSON to the file named by ``LAMASSU_FLEET_TIMER_FILE`` when the playbook ends. Times are those at which the
controller saw the events (a worker starting the task, its result arriving).
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: fleet_timer
type: aggregate
short_description: per-host first and last task times and recap, as JSON, for bench/fleet.py
description: writes the file named by LAMASSU_FLEET_TIMER_FILE when the playbook ends
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.hosts: dict[str, dict] = {}

    def _host(self, name: str) -> dict:
        return self.hosts.setdefault(name, {"first_start": None, "last_end": None, "tasks": 0})

    def v2_runner_on_start(self, host, task):
        entry = self._host(host.get_name())
        entry["first_start"] = entry["first_start"] or time.time()

    def _ended(self, result, *_args, **_kwargs):
        entry = self._host(result._host.get_name())
        entry["last_end"] = time.time()
        entry["tasks"] += 1

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _ended

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("LAMASSU_FLEET_TIMER_FILE")
        if not path:
            return
        for name, entry in self.hosts.items():
            start, end = entry["first_start"], entry["last_end"]
            entry["wall_s"] = round(end - start, 3) if start and end else None
            entry.update(stats.summarize(name))
        with open(path, "w", encoding="utf-8") as out:
            json.dump(self.hosts, out, indent=2)
