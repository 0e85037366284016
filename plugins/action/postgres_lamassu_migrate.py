# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgres_lamassu_migrate with ``src``: the controller's migrations go to the managed host as one archive.

Without ``src`` the module runs as it is (asynchronous jobs included). With ``src`` the files (with ``services``,
only those services' folders) are packed on the controller (``module_utils/goose/archive.py``) and sent inside the
module's arguments as ``archive``: no file goes to the host, so this works wherever the module itself can run,
including ``become_user: postgres`` with pipelining on a host without the ``acl`` package. The module unpacks them
into a private temporary directory and removes it. Paths in the result then name the files under ``src``.
"""

from __future__ import annotations

import base64
import os

from ansible.errors import AnsibleActionFail
from ansible.utils.vars import merge_hash

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.archive import pack
from ansible_collections.lamassuiot.postgres.plugins.plugin_utils.module_action import ModuleAction

MODULE = "lamassuiot.postgres.postgres_lamassu_migrate"


def renamed(value, old: str, new: str):
    """``value`` with the directory ``old`` replaced by ``new`` in every string (paths and messages)."""
    if isinstance(value, dict):
        return {key: renamed(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [renamed(item, old, new) for item in value]
    if isinstance(value, str) and old in value:
        return value.replace(old, new)
    return value


class ActionModule(ModuleAction):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        src = args.pop("src", None)
        folder = None
        if src is not None:
            if self.wraps_async():
                raise AnsibleActionFail("src cannot be used with async: give path, a directory on the managed host")
            if args.get("path") is not None or args.get("archive") is not None:
                raise AnsibleActionFail("parameters are mutually exclusive: path|src|archive")
            try:
                folder, data = pack(os.path.abspath(os.path.expanduser(str(src))), args.get("services"))
            except InvalidInput as exc:
                raise AnsibleActionFail(str(exc)) from None
            args["archive"] = base64.b64encode(data).decode("ascii")
        module_result = self.run_module(MODULE, args, task_vars)
        unpacked = module_result.get("path")
        if folder is not None and unpacked:
            module_result = renamed(module_result, unpacked, folder)
        return merge_hash(result, module_result)
