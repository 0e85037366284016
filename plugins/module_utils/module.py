# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AnsibleModule wrapper every module uses: spec merge, driver check, typed errors -> fail_json.

A driver error the module's own code did not turn into a typed error is converted here, so no psycopg2
exception leaves a module as a traceback ("MODULE FAILURE") on any ansible-core version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ._pg import HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR, psycopg2
from .connection import ConnectionParams, connection_argspec, scrub
from .errors import LamassuError, OperationFailed

INSUFFICIENT_PRIVILEGE = "42501"


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
        try:
            result = work(context)
        except psycopg2.Error as exc:
            raise driver_error(exc, connection, module.params) from None
    except LamassuError as exc:
        result = {"changed": False, "queries": [], **exc.result}
        module.fail_json(msg=scrub(str(exc), connection.secrets()), **result)
    module.exit_json(**result)


def _failed_database(exc, params: dict) -> str:
    """The database of the connection that failed, else the module's database parameters."""
    try:
        name = exc.cursor.connection.info.dbname  # None once the module closed that connection
    except (AttributeError, psycopg2.Error):
        name = None
    if name:
        return repr(name)
    names = [repr(params[key]) for key in sorted(params) if key.endswith("database") and params[key]]
    return " or ".join(names) or "(unknown)"


def driver_error(exc, connection: ConnectionParams, params: dict) -> OperationFailed:
    """A psycopg2 error as an operator's message: database, host, port and user, the server's own words and
    SQLSTATE. Built from the connection options and the server's diagnostics (never from a DSN) and scrubbed of
    every secret."""
    diag = getattr(exc, "diag", None)
    text = getattr(diag, "message_primary", None) or (exc.pgerror or str(exc)).strip() or "no message from the driver"
    for label, attribute in (("detail", "message_detail"), ("hint", "message_hint")):
        value = getattr(diag, attribute, None)
        if value:
            text += f"; {label}: {value}"
    code = getattr(exc, "pgcode", None)
    cause = f"SQLSTATE {code}, {type(exc).__name__}" if code else type(exc).__name__
    where = f"database {_failed_database(exc, params)} on {connection.location}:{connection.port}"
    message = f"PostgreSQL error on {where} as user {connection.user!r}: {text} ({cause})"
    if code == INSUFFICIENT_PRIVILEGE:
        message += (
            ". The login role lacks this privilege: grant it (e.g. USAGE on the schema) or log in as a role that has it"
        )
    return OperationFailed(scrub(message, connection.secrets()))
