# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection's action plugins share: the host check before a module, and running the module.

The first step of every playbook (``postgres_lamassu_info`` for upgrade and status, ``postgres_lamassu_lock`` for
rollback and cleanup) checks the connection first (``host_access.py``): where Ansible becomes an unprivileged user
without pipelining and cannot hand it a file, the task fails naming both fixes before any module runs.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.lamassuiot.postgres.plugins.plugin_utils.host_access import (
    PROBE,
    HostAccess,
    assess,
    refusal,
)


class ModuleAction(ActionBase):
    """An action that runs the collection's module of the same name on the managed host."""

    _supports_check_mode = True
    _supports_async = True

    def host_access(self, task_vars: dict) -> HostAccess:
        """What the connection can do with files for its become user; fails the task when no module can run."""
        probe = None
        if self._is_become_unprivileged():
            probe = self._low_level_execute_command(PROBE, sudoable=False).get("stdout", "")
        become_user = self.get_become_option("become_user") if probe is not None else None
        access = assess(become_user, self._is_pipelining_enabled("new"), probe)
        if not access.modules_run:
            host = task_vars.get("inventory_hostname", "the host")
            raise AnsibleActionFail(refusal(access, host), result={"host_access": access.as_dict()})
        return access

    def run_module(self, module: str, args: dict | None, task_vars: dict) -> dict:
        """The module's result, as an asynchronous job when the task asks for one."""
        wrap_async = self.wraps_async()
        result = self._execute_module(module, args, task_vars=task_vars, wrap_async=wrap_async)
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def wraps_async(self) -> bool:
        return bool(self._task.async_val) and not self._connection.has_native_async
