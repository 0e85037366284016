# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ensure the unified database and its service schemas: read current -> plan -> apply unless check mode."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._pg import sql
from .connection import ConnectionParams, connect
from .errors import InvalidInput, OperationFailed
from .lamassu import GOOSE_TABLE, MAINTENANCE_DATABASE
from .locks import SCHEMA_LOCK_NAMESPACE, LockKey, take
from .names import check_identifier
from .session import Session

STATES = ("present", "absent", "truncated")
# Runs on one database take turns (a session advisory lock in the maintenance database): without it, two runs
# at once both read "missing" and the second fails on a duplicate CREATE DATABASE / CREATE SCHEMA.
RUN_LOCK_TIMEOUT = 300.0
RUN_LOCK_INTERVAL = 0.2


@dataclass(frozen=True)
class SchemaRequest:
    database: str
    schemas: tuple[str, ...]
    owner: str | None = None
    state: str = "present"
    cascade: bool = False
    force: bool = False

    def validate(self) -> None:
        check_identifier(self.database, "database")
        for name in self.schemas:
            check_identifier(name, "schema")
        if self.owner is not None:
            check_identifier(self.owner, "owner role", allow_system=True)
        if len(set(self.schemas)) != len(self.schemas):
            raise InvalidInput(f"The schema list {list(self.schemas)} names a schema twice")
        if self.state == "truncated" and not self.force:
            raise InvalidInput("state=truncated empties every table of the listed schemas; set force=true to confirm")


@dataclass
class SchemaState:
    name: str
    exists: bool
    owner: str | None = None
    objects: list[str] = field(default_factory=list)


@dataclass
class Plan:
    create_database: sql.Composable | None = None
    statements: list[sql.Composable] = field(default_factory=list)
    outcome: dict[str, str] = field(default_factory=dict)
    truncated: list[str] = field(default_factory=list)


def read_schemas(session: Session, names: tuple[str, ...]) -> dict[str, SchemaState]:
    rows = session.fetch_all(
        """
        SELECT n.nspname, pg_get_userbyid(n.nspowner),
               ARRAY(SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind <> 'i'
                     UNION ALL SELECT p.proname::text FROM pg_proc p WHERE p.pronamespace = n.oid
                     UNION ALL SELECT t.typname::text FROM pg_type t
                               WHERE t.typnamespace = n.oid AND t.typrelid = 0 AND t.typcategory <> 'A'
                     ORDER BY 1)
        FROM pg_namespace n WHERE n.nspname = ANY(%s)
        """,
        (list(names),),
    )
    found = {name: SchemaState(name, True, owner, list(objects)) for name, owner, objects in rows}
    return {name: found.get(name, SchemaState(name, False)) for name in names}


def non_empty_tables(session: Session, schemas: list[str]) -> list[tuple[str, str]]:
    """Tables of ``schemas`` holding at least one row, the goose version table excepted."""
    tables = session.fetch_all(
        """
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND c.relname <> %s AND NOT c.relispartition
        ORDER BY 1, 2
        """,
        (schemas, GOOSE_TABLE),
    )
    return [
        (schema, table)
        for schema, table in tables
        if session.fetch_value(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier(schema, table)))
    ]


def plan_present(request: SchemaRequest, current: dict[str, SchemaState], db_exists: bool) -> Plan:
    plan = Plan()
    owner = sql.Identifier(request.owner) if request.owner else None
    if not db_exists:
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(request.database))
        plan.create_database = create + sql.SQL(" OWNER {}").format(owner) if owner else create
    for name in request.schemas:
        state = current[name]
        schema = sql.Identifier(name)
        if not state.exists:
            create = sql.SQL("CREATE SCHEMA {}").format(schema)
            plan.statements.append(create + sql.SQL(" AUTHORIZATION {}").format(owner) if owner else create)
            plan.outcome[name] = "created"
            continue
        if request.owner and state.owner != request.owner:
            plan.statements.append(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(schema, owner))
        plan.outcome[name] = "present"
    return plan


def plan_absent(request: SchemaRequest, current: dict[str, SchemaState]) -> Plan:
    plan = Plan()
    occupied = [s for s in current.values() if s.exists and s.objects]
    if occupied and not request.cascade:
        listing = "; ".join(
            f"{s.name}: {', '.join(s.objects[:10])}{' ...' if len(s.objects) > 10 else ''}" for s in occupied
        )
        raise InvalidInput(f"Refusing to drop non-empty schemas without cascade=true ({listing}); nothing was dropped")
    for name in request.schemas:
        if current[name].exists:
            drop = sql.SQL("DROP SCHEMA {}").format(sql.Identifier(name))
            plan.statements.append(drop + sql.SQL(" CASCADE") if current[name].objects else drop)
            plan.outcome[name] = "dropped"
        else:
            plan.outcome[name] = "absent"
    return plan


def plan_truncated(request: SchemaRequest, current: dict[str, SchemaState], tables: list[tuple[str, str]]) -> Plan:
    plan = Plan(outcome={name: "present" if current[name].exists else "absent" for name in request.schemas})
    if tables:
        names = sql.SQL(", ").join(sql.Identifier(schema, table) for schema, table in tables)
        plan.statements.append(sql.SQL("TRUNCATE TABLE {} CASCADE").format(names))
        plan.truncated = [f"{schema}.{table}" for schema, table in tables]
    return plan


def take_turn(session: Session, database: str, timeout: float = RUN_LOCK_TIMEOUT) -> None:
    """Wait (bounded) until no other run works on ``database``; the lock ends with the session."""

    def refuse(_holders) -> OperationFailed:
        return OperationFailed(
            f"Another run on database {database!r} is already in progress (it holds the advisory lock of "
            f"{SCHEMA_LOCK_NAMESPACE!r}); gave up after {timeout:g} s. Nothing was changed."
        )

    take(session, LockKey.names(SCHEMA_LOCK_NAMESPACE, database), refuse, timeout, RUN_LOCK_INTERVAL)


def ensure(params: ConnectionParams, request: SchemaRequest, check_mode: bool) -> dict:
    """Bring the database and schemas to ``request.state``; return the module result."""
    request.validate()
    queries: list[str] = []
    maintenance = Session(connect(params, MAINTENANCE_DATABASE), queries)
    target = None
    try:
        if not check_mode:
            take_turn(maintenance, request.database)
        db_exists = bool(
            maintenance.fetch_value("SELECT true FROM pg_database WHERE datname = %s", (request.database,))
        )
        if request.owner and not maintenance.fetch_value(
            "SELECT true FROM pg_roles WHERE rolname = %s", (request.owner,)
        ):
            raise InvalidInput(f"The owner role {request.owner!r} does not exist on {params.location}:{params.port}")
        if not db_exists and request.state == "truncated":
            raise InvalidInput(f"Cannot truncate schemas of database {request.database!r}: it does not exist")
        if db_exists:
            target = Session(connect(params, request.database, autocommit=False), queries)
            current = read_schemas(target, request.schemas)
        else:
            current = {name: SchemaState(name, False) for name in request.schemas}
        if request.state == "present":
            plan = plan_present(request, current, db_exists)
        elif request.state == "absent":
            plan = plan_absent(request, current)
        else:
            present = [name for name in request.schemas if current[name].exists]
            plan = plan_truncated(request, current, non_empty_tables(target, present))
        if target:
            target.conn.rollback()  # end the read transaction before changing anything
        apply(plan, params, request.database, maintenance, target, queries, check_mode)
        after = current if check_mode or not (plan.statements or plan.create_database) else None
        if after is None:
            target = target or Session(connect(params, request.database, autocommit=False), queries)
            after = read_schemas(target, request.schemas)
            target.conn.rollback()
        return build_result(request, plan, current, after, db_exists, queries)
    finally:
        maintenance.close()
        if target:
            target.close()


def apply(
    plan: Plan,
    params: ConnectionParams,
    database: str,
    maintenance: Session,
    target: Session | None,
    queries: list[str],
    check_mode: bool,
) -> None:
    """Run the plan: CREATE DATABASE outside a transaction, then every schema statement in one transaction."""
    if check_mode:
        statements = [plan.create_database] if plan.create_database else []
        queries.extend(maintenance.render(q) for q in [*statements, *plan.statements])
        return
    if plan.create_database:
        maintenance.execute(plan.create_database, what=f"creating database {database!r}")
    if not plan.statements:
        return
    session = target or Session(connect(params, database, autocommit=False), queries)
    try:
        for statement in plan.statements:
            session.execute(statement, what=f"database {database!r}")
        session.conn.commit()
    except Exception:
        session.conn.rollback()
        raise
    finally:
        if session is not target:
            session.close()


def build_result(
    request: SchemaRequest,
    plan: Plan,
    before: dict[str, SchemaState],
    after: dict[str, SchemaState],
    db_exists: bool,
    queries: list[str],
) -> dict:
    changed = bool(plan.statements or plan.create_database)
    schemas = []
    for name in request.schemas:
        state = after[name]
        owner = state.owner if state.exists else None
        if not state.exists and plan.outcome.get(name) == "created":  # check mode: what it would be
            owner = request.owner
        schemas.append({"name": name, "state": plan.outcome[name], "owner": owner})
    existing_before = sorted(n for n, s in before.items() if s.exists)
    if request.state == "present":
        existing_after = sorted(request.schemas)
    elif request.state == "absent":
        existing_after = []
    else:
        existing_after = existing_before
    result = {
        "changed": changed,
        "database": {"name": request.database, "created": not db_exists and request.state == "present"},
        "schemas": schemas,
        "queries": queries,
        "diff": {
            "before": {"database": request.database, "exists": db_exists, "schemas": existing_before},
            "after": {
                "database": request.database,
                "exists": db_exists or request.state == "present",
                "schemas": existing_after,
            },
        },
    }
    if request.state == "truncated":
        result["truncated_tables"] = plan.truncated
    return result
