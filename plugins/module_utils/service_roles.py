# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who a Lamassu service is on the server: the role it logs in with (the Helm chart's ``postgres.username``).

Lamassu's migration tool (goose-lamassu, the chart's ``migration-db-<db>`` Jobs) runs as the services' own login
role and creates the goose table and every table of the service; that role also owns the legacy databases it
created. So the owner of the goose table is the service's role, and where there is no goose table yet, the owner
of the database. An operator's ``service_role`` (one name for every service, or one per service) overrides both.

In a legacy database of PostgreSQL 15 and newer, schema ``public`` is owned by ``pg_database_owner``: a stand-in
for the database's owner, which means nothing in another database. ``concrete`` turns it into that owner.
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import InvalidInput
from .lamassu import GOOSE_TABLE
from .names import check_identifier

DATABASE_OWNER_PSEUDO_ROLE = "pg_database_owner"
# Where the role of a service was read from (``ServiceRole.source``).
FROM_OVERRIDE = "given"
FROM_TABLES = "owner of its goose table"
FROM_DATABASE = "owner of its database"

TABLE_OWNER_QUERY = """
SELECT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
"""


def goose_table_owner(session, schema: str) -> str | None:
    """The owner of the goose table of ``schema``, None when it has none."""
    return session.fetch_value(TABLE_OWNER_QUERY, (schema, GOOSE_TABLE))


def concrete(role: str | None, database_owner: str | None) -> str | None:
    """``role`` with the ``pg_database_owner`` stand-in replaced by the database's real owner."""
    return database_owner if role == DATABASE_OWNER_PSEUDO_ROLE else role


def overrides(value: object, services: tuple[str, ...]) -> dict[str, str]:
    """The operator's ``service_role``: nothing, one role for every service, or a mapping service -> role."""
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, str):
        given = dict.fromkeys(services, value)
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - set(services))
        if unknown:
            raise InvalidInput(
                f"service_role names {', '.join(map(str, unknown))}, not services of this run ({', '.join(services)})"
            )
        given = {str(k): v for k, v in value.items() if v not in (None, "")}
    else:
        raise InvalidInput(f"service_role must be a role name or a mapping of service to role name, not {value!r}")
    for service, role in given.items():
        if not isinstance(role, str):
            raise InvalidInput(f"service_role of {service!r} must be a role name, not {role!r}")
        check_identifier(role, f"service role of {service}", allow_system=True)
        if role == DATABASE_OWNER_PSEUDO_ROLE:
            raise InvalidInput(f"service_role of {service!r} cannot be {DATABASE_OWNER_PSEUDO_ROLE}: name a login role")
    return given


def decide(given: str | None, goose_owner: str | None, database_owner: str | None) -> tuple[str | None, str]:
    """The role of one service and where it was read from."""
    if given:
        return given, FROM_OVERRIDE
    if goose_owner:
        return goose_owner, FROM_TABLES
    return database_owner, FROM_DATABASE
