# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AnsibleModule wrapper every module uses: spec merge, driver check, typed errors -> fail_json."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ._pg import HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR
from .connection import ConnectionParams, connection_argspec, scrub
from .errors import LamassuError


@dataclass(frozen=True)
class ModuleContext:
    """What a module's work function needs from Ansible, and nothing more."""

    params: dict
    connection: ConnectionParams
    check_mode: bool
    diff: bool
    warn: Callable[[str], None]
    log: Callable[[str], None]  # Ansible's module log: syslog or the journal of the managed host


def run_module(argument_spec: dict, work: Callable[[ModuleContext], dict], **module_kwargs) -> None:
    """Build the module, call ``work`` once, exit with its result or fail with its error."""
    module = AnsibleModule(
        argument_spec={**connection_argspec(), **argument_spec},
        supports_check_mode=True,
        **module_kwargs,
    )
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2-binary"), exception=PSYCOPG2_IMPORT_ERROR)
    connection = ConnectionParams.from_module_params(module.params)
    context = ModuleContext(
        params=module.params,
        connection=connection,
        check_mode=module.check_mode,
        diff=module._diff,
        warn=module.warn,
        log=module.log,
    )
    try:
        result = work(context)
    except LamassuError as exc:
        result = {"changed": False, "queries": [], **exc.result}
        module.fail_json(msg=scrub(str(exc), connection.secrets()), **result)
    module.exit_json(**result)
