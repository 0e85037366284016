#!/usr/bin/python
# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: postgres_lamassu_login_check
short_description: Log in as each Lamassu service will after the move, and prove it can work on its schema
version_added: 0.1.0
description:
  - For each service, logs in the way the service will after the cutover and checks, before the services start,
    that it can do its work on its schema of the unified database.
  - With a config file (O(service_configs)) - the C(storage.username) and C(storage.password) of the service's own
    config file on the managed host, to O(database) with the service's schema alone on the search path, through the
    managed host's libpq. The server is reached as the module's connection options say (the host and port Ansible
    uses); only the role and the password are the service's.
  - Without one - the module's login session takes the service's role with C(SET ROLE) (the login role must be a
    superuser or a member of it) and sets the search path.
  - Checks, in one transaction that is rolled back - C(CREATE SCHEMA IF NOT EXISTS <service>) (what the schema-aware
    migration Job, C(goose-lamassu), runs first; PostgreSQL checks CREATE on the database before it looks whether
    the schema exists), USAGE and CREATE on the schema, every table read (C(SELECT ... LIMIT 1)) and locked the way
    a write locks it (C(LOCK TABLE ... IN ROW EXCLUSIVE MODE)) with INSERT, UPDATE and DELETE on it, the goose
    version table present among them, and USAGE on every sequence.
  - Fails when any check fails, listing every problem at once; each names the service, the role, the object and the
    missing privilege. The password is never shown.
  - Changes nothing; check mode runs the same checks.
extends_documentation_fragment:
  - lamassuiot.postgres.connection
options:
  database:
    description: The unified database.
    type: str
    default: lamassu
  services:
    description: The services to check; each has the schema of its name.
    type: list
    elements: str
    default: [ca, devicemanager, dmsmanager, alerts, va, kms]
  service_configs:
    description:
      - Service -> its own config file on the managed host (the file M(lamassuiot.postgres.lamassu_service_config)
        edits), read for the role and password the service logs in with.
      - Services without one are checked with C(SET ROLE).
    type: dict
    default: {}
  service_role:
    description:
      - For the services checked with C(SET ROLE) - their login role, one role name for every service or a mapping
        of service to role name.
      - A service left out takes the owner of its schema's goose table, else the owner of its schema (the role
        M(lamassuiot.postgres.postgres_lamassu_info) returns as RV(lamassuiot.postgres.postgres_lamassu_info#module:service_roles)).
    type: raw
attributes:
  check_mode:
    description: Runs the same checks; they change nothing.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
requirements:
  - PyYAML on the managed host, for O(service_configs)
seealso:
  - module: lamassuiot.postgres.postgres_db_to_schema
    description: The copy gives the service's role its schema and CONNECT and CREATE on the unified database.
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Log in as every service from its own config file, before the services start
  lamassuiot.postgres.postgres_lamassu_login_check:
    database: lamassu
    service_configs:
      ca: /etc/lamassuiot/ca/config.yml
      va: /etc/lamassuiot/va/config.yml
    services: [ca, va]

- name: Check the services' role with SET ROLE (Helm installations keep their config in the release)
  lamassuiot.postgres.postgres_lamassu_login_check:
    service_role: lamassu
"""

RETURN = r"""
ok:
  description: Whether every check of every service passed.
  returned: always
  type: bool
services:
  description:
    - Per service - C(login) (V(config file <path>) or V(SET ROLE)), C(role), C(tables) (the tables checked),
      C(ok) and C(problems).
  returned: always
  type: dict
  sample:
    ca: {login: config file /etc/lamassuiot/ca/config.yml, role: lamassu, ok: true, problems: [],
         tables: [ca_certificates, certificates, goose_db_version, issuance_profiles]}
problems:
  description: Every failed check, one sentence each, naming the service, role, object and missing privilege.
  returned: always
  type: list
  elements: str
  sample: ["ca: role 'lamassu' lacks CREATE on database 'lamassu': the migration Job's CREATE SCHEMA IF NOT EXISTS
            ca fails (permission denied for database lamassu); GRANT CREATE ON DATABASE lamassu TO lamassu"]
queries:
  description: The statements the checks ran in their transaction, which was rolled back.
  returned: always
  type: list
  elements: str
"""

# First, with nothing before it that needs Python 3.8: an older host Python fails here with a reason.
from ansible_collections.lamassuiot.postgres.plugins.module_utils import python_floor  # noqa: F401  # pylint: disable=unused-import

# isort: split
from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import OperationFailed
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import DEFAULT_DATABASE, SERVICES
from ansible_collections.lamassuiot.postgres.plugins.module_utils.login_check import LoginRequest, check
from ansible_collections.lamassuiot.postgres.plugins.module_utils.module import ModuleContext, run_module
from ansible_collections.lamassuiot.postgres.plugins.module_utils.service_roles import overrides


def argument_spec() -> dict:
    return {
        "database": {"type": "str", "default": DEFAULT_DATABASE},
        "services": {"type": "list", "elements": "str", "default": list(SERVICES)},
        "service_configs": {"type": "dict", "default": {}},
        "service_role": {"type": "raw"},
    }


def work(ctx: ModuleContext) -> dict:
    p = ctx.params
    services = tuple(p["services"])
    request = LoginRequest(
        database=p["database"],
        services=services,
        configs={k: v for k, v in p["service_configs"].items() if v},
        roles=overrides(p["service_role"], services),
    )
    result = check(ctx.connection, request)
    if not result["ok"]:
        raise OperationFailed(
            f"{len(result['problems'])} service login problem(s) on database {p['database']!r}, found before the "
            f"services start: {' | '.join(result['problems'])}",
            result,
        )
    return result


def main() -> None:
    run_module(argument_spec(), work)


if __name__ == "__main__":
    main()
