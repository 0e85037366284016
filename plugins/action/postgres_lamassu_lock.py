# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgres_lamassu_lock, after the host check of ``plugin_utils/module_action.py``: the lock is the first step of
rollback and cleanup, so a host where Ansible cannot run modules as its become user is told so, naming both fixes."""

from __future__ import annotations

from ansible.utils.vars import merge_hash

from ansible_collections.lamassuiot.postgres.plugins.plugin_utils.module_action import ModuleAction

MODULE = "lamassuiot.postgres.postgres_lamassu_lock"


class ActionModule(ModuleAction):
    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        self.host_access(task_vars)
        return merge_hash(result, self.run_module(MODULE, None, task_vars))
