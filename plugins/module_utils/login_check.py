# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Log in as each Lamassu service will after the cutover, and prove that it can do its work there.

A service logs in with the ``username`` and ``password`` of its own config file, to the unified database with its
schema alone on the search path. Where no config file is given, the login session takes the service's role with
``SET ROLE``. Either way, in one transaction that is rolled back (nothing changes, no lock outlives it):

* ``CREATE SCHEMA IF NOT EXISTS <service>``, the first statement of the schema-aware migration Job (goose-lamassu):
  PostgreSQL checks CREATE on the database before it looks whether the schema exists;
* USAGE and CREATE on the schema (its tables resolve through the search path; migrations create tables there);
* every table read (``SELECT ... LIMIT 1``) and locked as a write locks it (``LOCK TABLE ... IN ROW EXCLUSIVE
  MODE``), with INSERT, UPDATE and DELETE on each, the goose table among them; USAGE on every sequence.

Every failed check is a problem that names the service, the object and the privilege; the checks go on after one
fails (each runs in a savepoint), so all problems come at once. The password is never shown.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ._pg import pg_errors, psycopg2, sql
from .connection import ConnectionParams, connect, scrub, search_path_option
from .errors import InvalidInput, LamassuError
from .lamassu import GOOSE_TABLE
from .names import check_identifier
from .service_config import storage_login
from .service_roles import decide, goose_table_owner
from .session import Session

WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE")
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class LoginRequest:
    database: str
    services: tuple[str, ...]
    configs: dict = field(default_factory=dict, hash=False)  # service -> its config file on this host
    roles: dict = field(default_factory=dict, hash=False)  # service -> role, for SET ROLE (no config file)

    def validate(self) -> None:
        check_identifier(self.database, "unified database")
        for service in self.services:
            check_identifier(service, "service schema")
        unknown = sorted((set(self.configs) | set(self.roles)) - set(self.services))
        if unknown:
            raise InvalidInput(
                f"service_configs or service_role name {', '.join(unknown)}, not services of this check "
                f"({', '.join(self.services)})"
            )


@dataclass
class ServiceLogin:
    service: str
    how: str  # "config file <path>" or "SET ROLE"
    role: str | None = None
    tables: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "login": self.how,
            "role": self.role,
            "tables": self.tables,
            "ok": not self.problems,
            "problems": self.problems,
        }


def check(params: ConnectionParams, request: LoginRequest) -> dict:
    """Log in as every service and check what it needs; the module result (``ok`` false when any check failed)."""
    request.validate()
    queries: list[str] = []
    results = {service: check_service(params, request, service, queries) for service in request.services}
    problems = [problem for found in results.values() for problem in found.problems]
    return {
        "changed": False,
        "ok": not problems,
        "services": {service: found.as_dict() for service, found in results.items()},
        "problems": problems,
        "queries": queries,
    }


def check_service(params: ConnectionParams, request: LoginRequest, service: str, queries: list[str]) -> ServiceLogin:
    path = request.configs.get(service)
    if path:
        found = ServiceLogin(service, f"config file {path}")
        username, password = storage_login(path)
        if username is None:
            found.problems.append(f"{service}: {path} sets no storage.username; the service could not log in")
            return found
        found.role = username
        login = dataclasses.replace(
            params,
            user=username,
            password=password or "",
            extra={**params.extra, "options": search_path_option(service)},
        )
    else:
        found = ServiceLogin(service, "SET ROLE", request.roles.get(service))
        login = params
    try:
        conn = connect(login, request.database, autocommit=False)
    except LamassuError as exc:
        found.problems.append(f"{service}: cannot log in as {found.role!r} ({found.how}): {exc}")
        return found
    session = Session(conn, queries)
    try:
        if path is None:
            found.role = found.role or read_role(session, service)
            if found.role is None:
                found.problems.append(f"{service}: schema {service!r} has no goose table and no owner to log in as")
                return found
            session.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(found.role)))
            session.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(service)))
        session.execute(sql.SQL("SET LOCAL lock_timeout TO {}").format(sql.Literal(LOCK_TIMEOUT)))
        run_checks(session, request.database, service, found)
    except psycopg2.Error as exc:
        found.problems.append(f"{service}: the check as {found.role!r} failed: {str(exc).strip()}")
    finally:
        conn.rollback()
        conn.close()
    found.problems = [scrub(problem, login.secrets()) for problem in found.problems]
    return found


def read_role(session: Session, service: str) -> str | None:
    """The service's role read from its schema, by the rule of ``service_roles.decide``: the goose table's owner,
    else the schema's owner."""
    schema_owner = session.fetch_value(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (service,)
    )
    role, _source = decide(None, goose_table_owner(session, service), schema_owner)
    return role


def attempt(session: Session, statement: sql.Composable) -> psycopg2.Error | None:
    """Run ``statement`` in a savepoint; the error it raised (rolled back to the savepoint), or None."""
    session.queries.append(session.render(statement))
    with session.conn.cursor() as cur:
        cur.execute("SAVEPOINT lamassu_login_check")
        try:
            cur.execute(statement)
        except psycopg2.Error as exc:
            cur.execute("ROLLBACK TO SAVEPOINT lamassu_login_check")
            return exc
        cur.execute("RELEASE SAVEPOINT lamassu_login_check")
    return None


def run_checks(session: Session, database: str, service: str, found: ServiceLogin) -> None:
    schema = sql.Identifier(service)
    who = f"{service}: role {found.role!r}"
    error = attempt(session, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
    if error is not None:
        found.problems.append(
            f"{who} lacks CREATE on database {database!r}: the migration Job's CREATE SCHEMA IF NOT EXISTS "
            f"{service} fails ({denied(error)}); GRANT CREATE ON DATABASE {database} TO {found.role}"
        )
    usage, create = session.fetch_one(
        "SELECT has_schema_privilege(oid, 'USAGE'), has_schema_privilege(oid, 'CREATE') "
        "FROM pg_namespace WHERE nspname = %s",
        (service,),
    ) or (None, None)
    if usage is None:
        found.problems.append(f"{who}: schema {service!r} does not exist in database {database!r}")
        return
    if not usage:
        found.problems.append(f"{who} lacks USAGE on schema {service!r}: none of its tables is visible to it")
        return
    if not create:
        found.problems.append(f"{who} lacks CREATE on schema {service!r}: its migrations cannot create tables")
    tables = session.fetch_all(
        """
        SELECT c.relname::text, has_table_privilege(c.oid, 'INSERT'), has_table_privilege(c.oid, 'UPDATE'),
               has_table_privilege(c.oid, 'DELETE')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1
        """,
        (service,),
    )
    found.tables = [row[0] for row in tables]
    if GOOSE_TABLE not in found.tables:
        found.problems.append(f"{who}: schema {service!r} has no goose table {GOOSE_TABLE!r}")
    for name, *writes in tables:
        table = sql.Identifier(service, name)
        error = attempt(session, sql.SQL("SELECT FROM {} LIMIT 1").format(table))
        if error is not None:
            found.problems.append(f"{who} lacks SELECT on table {service}.{name} ({denied(error)})")
        missing = [privilege for i, privilege in enumerate(WRITE_PRIVILEGES) if not writes[i]]
        error = attempt(session, sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(table))
        if missing or error is not None:
            found.problems.append(
                f"{who} lacks {', '.join(missing or WRITE_PRIVILEGES)} on table {service}.{name}"
                + (f" ({denied(error)})" if error is not None else "")
            )
    for (name,) in session.fetch_all(
        """
        SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind = 'S'
          AND NOT CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'USAGE') END ORDER BY 1
        """,
        (service,),
    ):
        found.problems.append(f"{who} lacks USAGE on sequence {service}.{name}: its inserts cannot take numbers")


def denied(error: psycopg2.Error) -> str:
    """The server's own words, without the SQLSTATE noise."""
    diag = getattr(error, "diag", None)
    text = getattr(diag, "message_primary", None) or str(error).strip()
    if isinstance(error, pg_errors.InsufficientPrivilege):
        return text
    return f"{text}, SQLSTATE {error.pgcode}"
