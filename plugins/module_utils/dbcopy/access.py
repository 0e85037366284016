# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who owns a published copy and how its service reaches it.

- The published schema's owner is the operator's ``owner``, else the source schema's owner; its grants are the
  source schema's. In the source, ``pg_database_owner`` (schema ``public`` of PostgreSQL 15 and newer) stands for
  the source database's owner, and means nothing in the target database: it becomes that owner
  (``service_roles.concrete``).
- The service's login role is the operator's ``service_role``, else the owner of the goose table, else the owner
  of the source database (``service_roles.decide``).
- That role needs CONNECT and CREATE on the target database (goose-lamassu starts with ``CREATE SCHEMA IF NOT
  EXISTS <service>``, which checks CREATE on the database first) and USAGE and CREATE on its schema (its later
  migrations create tables there). Each is granted only when the role does not hold it already (as owner,
  superuser, member of a role that holds it, or through PUBLIC): a re-run grants nothing.

The database gets grants, not a new owner: it is shared by the six services, which may log in with different
roles, and its owner could drop the schemas of the others.
"""

from __future__ import annotations

from collections.abc import Callable

from .._compat import transaction
from .._pg import sql
from ..errors import InvalidInput
from ..lamassu import GOOSE_TABLE, SERVICES
from ..locks import ACCESS_LOCK, xact_lock
from ..service_roles import DATABASE_OWNER_PSEUDO_ROLE, concrete, decide, goose_table_owner, overrides
from . import ddl
from .catalog import SCHEMA_QUERY
from .catalog_model import Grant, SourceCatalog, grants_from_rows
from .request import CopyRequest

DATABASE_PRIVILEGES = ("CONNECT", "CREATE")
SCHEMA_PRIVILEGES = ("USAGE", "CREATE")
PUBLIC = "PUBLIC"


def given_roles(value: object, targets: list[str]) -> dict[str, str]:
    """The operator's ``service_role`` per target schema: one role for all, or a mapping service -> role.

    A mapping may name any Lamassu service besides the targets of this run (a role passes one mapping to runs
    of different services); another name is an error.
    """
    known = tuple(dict.fromkeys([*targets, *SERVICES]))
    roles = overrides(value, known)
    return {target: roles[target] for target in targets if target in roles}


def mapped_acl(acl: list[Grant] | None, database_owner: str | None) -> list[Grant] | None:
    """``acl`` with grants to ``pg_database_owner`` made to the database's real owner instead."""
    if acl is None:
        return None
    mapped = [
        Grant(concrete(g.grantee, database_owner) or g.grantee, g.privilege, g.grantable)
        if g.grantee == DATABASE_OWNER_PSEUDO_ROLE
        else g
        for g in acl
    ]
    return list(dict.fromkeys(mapped))


def published_owner(given: str | None, catalog: SourceCatalog, database_owner: str | None) -> str:
    """The owner of the published schema: the operator's, else the source schema's (made concrete)."""
    return concrete(given or catalog.schema_owner, database_owner) or catalog.schema_owner


def published(given_owner: str | None, catalog: SourceCatalog, database_owner: str | None):
    """Owner and grants of the published schema: ``published_owner`` and ``mapped_acl``."""
    return published_owner(given_owner, catalog, database_owner), mapped_acl(catalog.schema_acl, database_owner)


def schema_statements(schema: str, owner: str, acl: list[Grant] | None) -> list[sql.Composable]:
    """Give ``schema`` its owner and exactly ``acl``. Run on the staging schema before the objects get their
    owners: a new owner of a table needs CREATE on its schema (a login role that is no superuser)."""
    target = sql.Identifier(schema)
    return [
        sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(target, sql.Identifier(owner)),
        *ddl.grant_statements("SCHEMA", target, owner, acl),
    ]


def catalog_goose_owner(catalog: SourceCatalog) -> str | None:
    return next((t.owner for t in catalog.tables if t.name == GOOSE_TABLE), None)


def service_role(given: str | None, goose_owner: str | None, database_owner: str | None) -> str | None:
    role, _source = decide(given, concrete(goose_owner, database_owner), database_owner)
    return role


def missing_schema_privileges(owner: str, acl: list[Grant] | None, holds: Callable[[str], bool]) -> list[str]:
    """Privileges of ``SCHEMA_PRIVILEGES`` the service lacks on a schema of ``owner`` with ``acl``.

    ``holds(role)`` tells whether the service has the privileges of ``role`` (itself, a role it inherits, any
    role for a superuser). ``acl`` None is the built-in default: the owner's privileges only.
    """
    if holds(owner):
        return []
    grants = acl or []
    return [
        privilege
        for privilege in SCHEMA_PRIVILEGES
        if not any(g.privilege == privilege and (g.grantee == PUBLIC or holds(g.grantee)) for g in grants)
    ]


def grant(privileges: list[str], kind: str, target: str, role: str) -> sql.Composable:
    return sql.SQL("GRANT {} ON {} {} TO {}").format(
        sql.SQL(", ").join(sql.SQL(p) for p in privileges), sql.SQL(kind), sql.Identifier(target), sql.Identifier(role)
    )


def role_holder(session, role: str) -> Callable[[str], bool]:
    """``holds(other)``: whether ``role`` has the privileges of ``other`` (PUBLIC: everyone)."""
    known: dict[str, bool] = {}

    def holds(other: str) -> bool:
        if other == PUBLIC:
            return True
        if other not in known:
            known[other] = bool(session.fetch_value("SELECT pg_has_role(%s, %s, 'USAGE')", (role, other)))
        return known[other]

    return holds


def missing_database_privileges(session, role: str, database: str) -> list[str]:
    """What ``role`` lacks on ``database``; all of it when the database does not exist yet (check mode), unless
    the role is a superuser."""
    if not session.fetch_value("SELECT count(*) FROM pg_database WHERE datname = %s", (database,)):
        superuser = session.fetch_value("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,))
        return [] if superuser else list(DATABASE_PRIVILEGES)
    return [
        privilege
        for privilege in DATABASE_PRIVILEGES
        if not session.fetch_value("SELECT has_database_privilege(%s, %s, %s)", (role, database, privilege))
    ]


def ensure(session, role: str | None, database: str, schema: str, owner: str, acl: list[Grant] | None) -> int:
    """Grant ``role`` what it lacks on ``database`` and on ``schema`` (of ``owner``, with ``acl`` as published),
    inside the caller's transaction; returns the number of GRANT statements."""
    if not role:
        return 0
    xact_lock(session, ACCESS_LOCK)
    statements = []
    on_database = missing_database_privileges(session, role, database)
    if on_database:
        statements.append(grant(on_database, "DATABASE", database, role))
    on_schema = missing_schema_privileges(owner, acl, role_holder(session, role))
    if on_schema:
        statements.append(grant(on_schema, "SCHEMA", schema, role))
    for statement in statements:
        session.execute(statement, what=f"access of the service role {role}")
    return len(statements)


def repair(session, role: str | None, database: str, schema: str) -> bool:
    """On a recorded copy: grant ``role`` what it lacks (a copy made by an older version); whether it did."""
    row = session.fetch_one(SCHEMA_QUERY, (schema,))
    if row is None or not role:
        return False
    _oid, owner, _comment, acl = row
    with transaction(session.conn):
        return ensure(session, role, database, schema, owner, grants_from_rows(acl)) > 0


def database_owner(session, database: str) -> str | None:
    return session.fetch_value("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (database,))


def recorded_service_role(session, request: CopyRequest, source_owner: str | None) -> str | None:
    """The service role of a recorded copy: its goose table keeps the owner of the source's."""
    return service_role(request.service_role, goose_table_owner(session, request.target), source_owner)


def check_roles(session, request: CopyRequest) -> None:
    """Fail, before anything changes, on an ``owner`` or ``service_role`` that is not a role of the server."""
    for option, role in (("owner", request.owner), ("service_role", request.service_role)):
        if role and not session.fetch_value("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)):
            raise InvalidInput(
                f"{option} of the copy into schema {request.target!r} names role {role!r}, which does not exist "
                "on the server; nothing was changed"
            )
