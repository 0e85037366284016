# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgres_lamassu_info, first told what the connection can do (``plugin_utils/host_access.py``).

The first step of every playbook reads the host with this module. When Ansible becomes an unprivileged user there,
one shell command (no module, no file) asks whether the host can take Ansible's files for that user; without
pipelining and without that, the task fails naming both fixes before any module runs. The answer is returned as
``host_access``: the copies follow ``host_access.async_jobs`` (background copies are Ansible async jobs).
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.lamassuiot.postgres.plugins.plugin_utils.host_access import PROBE, assess, async_note, refusal

MODULE = "lamassuiot.postgres.postgres_lamassu_info"


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        host = (task_vars or {}).get("inventory_hostname", "the host")
        probe = None
        if self._is_become_unprivileged():
            answer = self._low_level_execute_command(PROBE, sudoable=False)
            probe = answer.get("stdout", "")
        access = assess(
            self.get_become_option("become_user") if probe is not None else None,
            self._is_pipelining_enabled("new"),
            probe,
        )
        if not access.modules_run:
            raise AnsibleActionFail(refusal(access, host), result={"host_access": access.as_dict()})
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        module_result = self._execute_module(MODULE, task_vars=task_vars, wrap_async=wrap_async)
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        host_access = {**access.as_dict(), "note": None if access.async_jobs else async_note(access, host)}
        return merge_hash(merge_hash(result, module_result), {"host_access": host_access})
