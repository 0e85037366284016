# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgres_lamassu_info, first told what the connection can do (``plugin_utils/host_access.py``).

The first step of upgrade and status reads the host with this module. When Ansible becomes an unprivileged user
there, one shell command (no module, no file) asks whether the host can take Ansible's files for that user; without
pipelining and without that, the task fails naming both fixes before any module runs. The answer is returned as
``host_access``: the copies follow ``host_access.async_jobs`` (background copies are Ansible async jobs).
"""

from __future__ import annotations

from ansible.utils.vars import merge_hash

from ansible_collections.lamassuiot.postgres.plugins.plugin_utils.host_access import async_note
from ansible_collections.lamassuiot.postgres.plugins.plugin_utils.module_action import ModuleAction

MODULE = "lamassuiot.postgres.postgres_lamassu_info"


class ActionModule(ModuleAction):
    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        access = self.host_access(task_vars)
        module_result = self.run_module(MODULE, None, task_vars)
        note = None if access.async_jobs else async_note(access, task_vars.get("inventory_hostname", "the host"))
        return merge_hash(merge_hash(result, module_result), {"host_access": {**access.as_dict(), "note": note}})
