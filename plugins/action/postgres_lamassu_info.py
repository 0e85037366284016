# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgres_lamassu_info, first told what the connection can do (``plugin_utils/host_access.py``).

The first step of upgrade and status reads the host with this module. When Ansible becomes an unprivileged user
there, one shell command (no module, no file) asks whether the host can take Ansible's files for that user; without
pipelining and without that, the task fails naming both fixes before any module runs. The answer is returned as
``host_access``, and fills in the ``plan`` option's ``host`` and ``async_jobs`` (background copies are Ansible async
jobs). A host the module could not read still gets a ``plan``: its first problem says why.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.utils.vars import merge_hash

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.upgrade_plan import RunChoices, unread_plan
from ansible_collections.lamassuiot.postgres.plugins.plugin_utils.host_access import async_note
from ansible_collections.lamassuiot.postgres.plugins.plugin_utils.module_action import ModuleAction

MODULE = "lamassuiot.postgres.postgres_lamassu_info"


class ActionModule(ModuleAction):
    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        host = task_vars.get("inventory_hostname", "the host")
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        choices = {**(args.get("plan") or {}), "host": host}
        try:
            access = self.host_access(task_vars)
        except AnsibleActionFail as refused:
            refused.result["plan"] = unread_plan(run_choices(choices), unread_problem(refused.result))
            raise
        args["plan"] = {**choices, "async_jobs": access.async_jobs}
        module_result = self.run_module(MODULE, args, task_vars)
        if module_result.get("failed") and "plan" not in module_result:
            module_result["plan"] = unread_plan(run_choices(args["plan"]), unread_problem(module_result))
        note = None if access.async_jobs else async_note(access, host)
        return merge_hash(merge_hash(result, module_result), {"host_access": {**access.as_dict(), "note": note}})


def run_choices(option: dict) -> RunChoices:
    """The run's choices for the plan of a host that was not read; an option the module refused (its failure says
    why) leaves only the host."""
    try:
        return RunChoices.from_option(option)
    except InvalidInput:
        return RunChoices(host=option["host"])


def unread_problem(failed: dict) -> str:
    """The problem of a host the module could not read: the error, the module's last words when it died, and where
    the login is kept when the server refused it."""
    message = failed.get("msg") or "no answer"
    stderr = (failed.get("module_stderr") or "").strip()
    last_words = f" - the module ended with: {stderr.splitlines()[-1]}" if stderr else ""
    login = (
        " (check lamassu_pg_user and lamassu_pg_password, kept in the vault)"
        if "authentication failed" in message
        else ""
    )
    return f"preflight could not read the server: {message}{last_words}{login}"
