#!/usr/bin/python
# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: postgres_lamassu_schema
short_description: Ensure the unified Lamassu database and its service schemas
version_added: 0.1.0
description:
  - Creates the unified database (outside a transaction, with O(owner)) when it is missing,
    then creates the listed schemas and fixes their owner, all in one transaction.
  - With O(state=absent) drops the listed schemas (never the database); a non-empty schema
    is refused unless O(cascade=true), and a refused drop changes nothing.
  - With O(state=truncated) empties every table of the listed schemas except the goose
    version table in one C(TRUNCATE ... CASCADE); for CI and test environments, and only with O(force=true).
  - Names are checked before anything changes (empty, longer than 63 bytes, C(pg_) prefix) and
    are always quoted, so quotes, spaces, semicolons or capitals make exactly that identifier.
extends_documentation_fragment:
  - lamassuiot.postgres.connection
options:
  database:
    description: The unified database; created when missing and O(state=present).
    type: str
    default: lamassu
  schemas:
    description: Schemas to ensure.
    type: list
    elements: str
    default: [ca, devicemanager, dmsmanager, alerts, va, kms]
  owner:
    description:
      - Owner role of a database this module creates and of the listed schemas.
      - An existing schema owned by another role is given to this role.
      - When omitted, new objects belong to O(login_user) and owners are left alone.
    type: str
  state:
    description: Whether the schemas exist, are dropped, or exist with their tables emptied.
    type: str
    default: present
    choices: [present, absent, truncated]
  cascade:
    description: With O(state=absent), also drop schemas that contain objects, and those objects.
    type: bool
    default: false
  force:
    description: Required with O(state=truncated), which destroys data.
    type: bool
    default: false
attributes:
  check_mode:
    description: Shows the statements it would run in RV(queries); changes nothing.
    support: full
  diff_mode:
    description: Shows the database and the set of listed schemas that exist before and after.
    support: full
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Ensure the unified database and the six service schemas
  lamassuiot.postgres.postgres_lamassu_schema:
    owner: lamassu
    login_host: db.example.com
    login_password: "{{ vault_pg_password }}"

- name: Drop two schemas and everything in them
  lamassuiot.postgres.postgres_lamassu_schema:
    schemas: [va, alerts]
    state: absent
    cascade: true

- name: Empty every service table between CI test runs (goose history kept)
  lamassuiot.postgres.postgres_lamassu_schema:
    state: truncated
    force: true
"""

RETURN = r"""
database:
  description: The unified database and whether this run created it (or would, in check mode).
  returned: always
  type: dict
  sample: {name: lamassu, created: true}
schemas:
  description: One entry per listed schema, with what happened to it and its owner.
  returned: always
  type: list
  elements: dict
  sample: [{name: ca, state: created, owner: lamassu}, {name: va, state: present, owner: lamassu}]
truncated_tables:
  description: With O(state=truncated), the tables emptied (or that would be), schema-qualified.
  returned: when state is truncated
  type: list
  elements: str
  sample: [ca.certificates, ca.ca_certificates]
queries:
  description: The statements run, or that would run in check mode.
  returned: always
  type: list
  elements: str
  sample: ['CREATE DATABASE "lamassu" OWNER "lamassu"', 'CREATE SCHEMA "ca" AUTHORIZATION "lamassu"']
"""

# First, with nothing before it that needs Python 3.8: an older host Python fails here with a reason.
from ansible_collections.lamassuiot.postgres.plugins.module_utils import python_floor  # noqa: F401  # pylint: disable=unused-import

# isort: split
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import DEFAULT_DATABASE, SERVICES
from ansible_collections.lamassuiot.postgres.plugins.module_utils.module import ModuleContext, run_module
from ansible_collections.lamassuiot.postgres.plugins.module_utils.schema import STATES, SchemaRequest, ensure


def argument_spec() -> dict:
    return {
        "database": {"type": "str", "default": DEFAULT_DATABASE},
        "schemas": {"type": "list", "elements": "str", "default": list(SERVICES)},
        "owner": {"type": "str"},
        "state": {"type": "str", "default": "present", "choices": list(STATES)},
        "cascade": {"type": "bool", "default": False},
        "force": {"type": "bool", "default": False},
    }


def work(ctx: ModuleContext) -> dict:
    p = ctx.params
    request = SchemaRequest(p["database"], tuple(p["schemas"]), p["owner"], p["state"], p["cascade"], p["force"])
    result = ensure(ctx.connection, request, ctx.check_mode)
    if not ctx.diff:
        result.pop("diff")
    return result


def main() -> None:
    run_module(argument_spec(), work)


if __name__ == "__main__":
    main()
