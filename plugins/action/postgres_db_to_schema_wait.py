# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waits for copies of postgres_db_to_schema started as asynchronous jobs, printing a progress line per copy
every ``interval`` seconds, and returns their results in the shape of a loop's registered results.

Each poll runs ``async_status`` for every copy still running and, for those, ``slurp`` of its progress file
(``module_utils/dbcopy/progress.py``); a finished copy's job and progress file are removed.

With ``renew_lock`` (the arguments of ``postgres_lamassu_lock``, the connection included: module_defaults do not
reach a module an action runs), the run's lease on the server-wide lock is renewed every third of the lease while
the copies run; a renewal that fails (another run took the lock) fails the wait.
"""

from __future__ import annotations

import base64
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.progress import (
    progress_line,
    read_progress,
)
from ansible_collections.lamassuiot.postgres.plugins.module_utils.upgrade_lock import DEFAULT_LEASE

display = Display()

ARGUMENT_SPEC = {
    "copies": {"type": "list", "elements": "dict", "required": True},
    "progress_files": {"type": "dict", "default": {}},
    "interval": {"type": "int", "default": 10},
    "timeout": {"type": "int", "default": 86400},
    "renew_lock": {"type": "dict"},
}
LOCK_MODULE = "lamassuiot.postgres.postgres_lamassu_lock"
MAX_INTERVAL = 10
# What async_status adds to the result of the job; the result returned is the module's own.
ASYNC_KEYS = ("ansible_job_id", "started", "finished", "results_file", "erased")


def running(copy: dict) -> bool:
    """A copy started in the background (``poll: 0``) and not waited for yet."""
    return bool(copy.get("ansible_job_id")) and not copy.get("finished")


class _Watch:
    """One copy running in the background: its place in the results, job, label and progress file."""

    def __init__(self, index: int, copy: dict, progress_files: dict):
        self.index = index
        self.copy = copy
        self.jid = copy["ansible_job_id"]
        item = copy.get(copy.get("ansible_loop_var") or "item")
        self.label = str(item if item is not None else self.jid)
        self.progress_file = progress_files.get(self.label)


class _Renewal:
    """The run's lease on the server-wide lock, renewed every third of its length."""

    def __init__(self, lock_args: dict, omit):
        # an omitted connection option (default(omit) nested in a dict) is no option
        self.args = {key: value for key, value in lock_args.items() if value != omit}
        self.args["state"] = "renewed"
        self.every = int(self.args.get("lease") or DEFAULT_LEASE) / 3
        self.last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every

    def done(self, result: dict) -> None:
        if result.get("failed"):
            raise AnsibleActionFail(
                f"The lease of the run on the server-wide lock could not be renewed: {result.get('msg')}"
            )
        for warning in result.get("warnings") or []:
            # ansible-core 2.19 hands a module's warnings to an action as WarningSummary objects, earlier as text
            display.warning(getattr(getattr(warning, "event", None), "msg", warning))
        self.last = time.monotonic()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        task_vars = task_vars or {}
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        if not 1 <= args["interval"] <= MAX_INTERVAL:
            raise AnsibleActionFail(f"interval must be between 1 and {MAX_INTERVAL} seconds, not {args['interval']}")
        copies = args["copies"]
        results = [dict(copy) for copy in copies]
        watches = [_Watch(n, copy, args["progress_files"]) for n, copy in enumerate(copies) if running(copy)]
        if watches:
            self._wait(list(watches), results, args, task_vars)
        failed = [r for r in results if r.get("failed")]
        result.update(
            changed=any(bool(r.get("changed")) for r in results),
            msg="All items completed",
            results=results,
        )
        # The warnings of the copies waited for here (the others were shown by the task that ran them).
        warnings = [w for watch in watches for w in results[watch.index].get("warnings") or []]
        if warnings:
            result["warnings"] = warnings
        if failed:
            result["failed"] = True
            result["msg"] = "; ".join(f"{r.get('item', r.get('schema'))}: {r.get('msg', 'failed')}" for r in failed)
        else:
            # At -v the results were shown by the copy task (or are in the summary that follows): not again here.
            result["_ansible_verbose_override"] = True
        return result

    def _wait(self, watches: list[_Watch], results: list[dict], args: dict, task_vars: dict) -> None:
        host = task_vars.get("inventory_hostname", "?")
        async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        began = time.monotonic()
        renewal = _Renewal(args["renew_lock"], task_vars.get("omit")) if args["renew_lock"] else None
        while watches:
            poll_began = time.monotonic()
            for watch in list(watches):
                status = self._module(
                    "ansible.builtin.async_status",
                    {"jid": watch.jid, "mode": "status", "_async_dir": async_dir},
                    task_vars,
                )
                if status.get("finished"):
                    results[watch.index] = self._final(watch, status)
                    self._forget(watch, async_dir, task_vars)
                    watches.remove(watch)
                else:
                    display.display(
                        progress_line(host, watch.label, self._progress(watch, task_vars), time.monotonic() - began)
                    )
            if not watches:
                break
            if renewal is not None and renewal.due():
                renewal.done(self._module(LOCK_MODULE, renewal.args, task_vars))
            if time.monotonic() - began > args["timeout"]:
                names = ", ".join(f"{w.label} (job {w.jid})" for w in watches)
                raise AnsibleActionFail(
                    f"Copies still running after {args['timeout']} s: {names}; they go on in the background until "
                    "they end or reach their async limit"
                )
            time.sleep(max(0.0, poll_began + args["interval"] - time.monotonic()))

    def _module(self, name: str, module_args: dict, task_vars: dict) -> dict:
        return self._execute_module(module_name=name, module_args=module_args, task_vars=task_vars)

    def _progress(self, watch: _Watch, task_vars: dict) -> dict | None:
        if not watch.progress_file:
            return None
        read = self._module("ansible.builtin.slurp", {"src": watch.progress_file}, task_vars)
        if read.get("failed") or "content" not in read:
            return None  # not written yet
        return read_progress(base64.b64decode(read["content"]).decode("utf-8", "replace"))

    def _final(self, watch: _Watch, status: dict) -> dict:
        """The copy module's result, with the loop keys of the copy's own entry, as a normal loop item has."""
        final = {key: value for key, value in status.items() if key not in ASYNC_KEYS}
        for key in ("failed", "changed"):
            if key in final:
                final[key] = bool(final[key])
        loop_var = watch.copy.get("ansible_loop_var") or "item"
        index_var = watch.copy.get("ansible_index_var")
        for key in ("ansible_loop_var", loop_var, "ansible_index_var", index_var, "ansible_loop"):
            if key and key in watch.copy:
                final[key] = watch.copy[key]
        # Named like a copy of the module's services form: the service (the loop item).
        final.setdefault("schema", watch.label)
        return final

    def _forget(self, watch: _Watch, async_dir: str, task_vars: dict) -> None:
        """The job's status file and the progress file go once the result is read."""
        self._module(
            "ansible.builtin.async_status", {"jid": watch.jid, "mode": "cleanup", "_async_dir": async_dir}, task_vars
        )
        if watch.progress_file:
            self._module("ansible.builtin.file", {"path": watch.progress_file, "state": "absent"}, task_vars)
