# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The target database: its connection and lock, the state of the target schema, the staging schema (built,
published, or dropped as an interrupted run's leftover) and the extensions the copy needs there."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._compat import transaction
from .._pg import psycopg2, sql
from ..connection import connect
from ..errors import ConnectionFailed, Fix, InvalidInput, LamassuError, OperationFailed
from ..lamassu import COLLECTION_VERSION, GOOSE_TABLE
from ..locks import COPY_LOCK_NAMESPACE, EXTENSIONS_LOCK, LockKey, take, try_lock, xact_lock
from ..session import Session
from . import access, ddl
from .catalog import acl_expr, extension_schemas, reading_path
from .catalog_model import SourceCatalog
from .journal import CopyRecord, Journal
from .request import LOCK_RETRY_SECONDS, MESSAGE_OBJECTS, STAGING_MARKER, CopyJob, TableOutcome

NEW_DATABASE_TEMPLATE = "template1"  # what CREATE DATABASE copies when no TEMPLATE is named


@dataclass
class TargetState:
    exists: bool
    oid: int | None = None
    owner: str | None = None
    acl: list | None = None
    comment: str | None = None
    objects: list[str] = field(default_factory=list)
    non_empty_tables: list[str] = field(default_factory=list)


def connect_target(job: CopyJob):
    try:
        return connect(job.params, job.request.target_database)
    except ConnectionFailed as exc:
        if "does not exist" not in str(exc):
            raise
        missing = InvalidInput(
            f"The target database {job.request.target_database!r} does not exist; "
            "create it first with lamassuiot.postgres.postgres_lamassu_schema"
        )
    if not job.check_mode or job.request.state != "present":
        raise missing
    # Check mode plans against template1, which the schema module's CREATE DATABASE copies: the same
    # extensions and schemas, and no journal.
    try:
        conn = connect(job.params, NEW_DATABASE_TEMPLATE)
    except ConnectionFailed:
        raise missing from None
    return conn


def lock(job: CopyJob, session: Session) -> None:
    """Take the target's advisory lock, or fail naming the server process that holds it.

    A lock whose holder is no longer listed belongs to a run that has just closed its connection (its
    server process ends a moment later): that one is tried again for up to ``LOCK_RETRY_SECONDS``.
    """
    req = job.request

    def refuse(holders) -> OperationFailed:
        holder = ", ".join(str(h.pid) for h in holders)
        return OperationFailed(
            f"A copy into schema {req.target!r} of database {req.target_database!r} is "
            f"already in progress (server process {holder or 'unknown'} holds its lock); nothing was changed"
        )

    take(
        session, LockKey.names(COPY_LOCK_NAMESPACE, req.target), refuse, LOCK_RETRY_SECONDS, 0.1, wait_while_held=False
    )


def cleanup(job: CopyJob, session: Session) -> None:
    """Best effort after a failure: drop the staging schema, on the locked connection or else a fresh one."""
    try:
        session.conn.rollback()
        drop_leftovers(job, session)
        return
    except (LamassuError, psycopg2.Error):
        pass
    try:
        conn = connect(job.params, job.request.target_database)
    except LamassuError:
        return
    try:
        fresh = Session(conn, job.queries)
        # The first connection is gone, so is its lock: take it again or leave the leftovers to the next run.
        if try_lock(fresh, LockKey.names(COPY_LOCK_NAMESPACE, job.request.target)):
            drop_leftovers(job, fresh)
    except (LamassuError, psycopg2.Error):
        pass
    finally:
        conn.close()


def drop_leftovers(job: CopyJob, session: Session) -> None:
    """Drop the staging schema of an interrupted run, after checking that this module made it."""
    marker = session.fetch_one(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", (job.staging,)
    )
    if marker is None:
        return
    if marker[0] != STAGING_MARKER:
        raise OperationFailed(
            f"Schema {job.staging!r} exists in database {job.request.target_database!r} but was not made by "
            "this module (its comment differs); it is the staging name of this copy: rename or drop it"
        )
    with transaction(session.conn):
        session.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(job.staging)), what="interrupted run")


def target_state(session: Session, schema: str) -> TargetState:
    row = session.fetch_one(
        f"""SELECT n.oid, pg_get_userbyid(n.nspowner), {acl_expr("n.nspacl")}, obj_description(n.oid, 'pg_namespace')
            FROM pg_namespace n WHERE n.nspname = %s""",
        (schema,),
    )
    if row is None:
        return TargetState(False)
    oid, owner, acl, comment = row
    objects = session.fetch_all(
        """
        SELECT kind, name FROM (
          SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                 WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
                 ELSE 'relation' END AS kind, c.relname::text AS name
          FROM pg_class c WHERE c.relnamespace = %(ns)s AND c.relkind NOT IN ('i', 'I', 't', 'c')
          UNION ALL SELECT 'function', p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = %(ns)s
          UNION ALL SELECT 'type', t.typname::text FROM pg_type t
            WHERE t.typnamespace = %(ns)s AND t.typtype IN ('e', 'd', 'r', 'b', 'c')
              AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
              AND NOT (t.typcategory = 'A' AND t.typelem <> 0)
        ) o ORDER BY 1, 2
        """,
        {"ns": oid},
    )
    state = TargetState(True, oid, owner, acl, comment, [f"{kind} {name}" for kind, name in objects])
    for kind, name in objects:
        if kind == "table" and session.fetch_value(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(schema, name))
        ):
            state.non_empty_tables.append(name)
    return state


def check_target(job: CopyJob, target: TargetState) -> bool:
    """Whether publishing replaces an existing schema holding objects; raise when that is refused."""
    if not target.exists or not target.objects:
        return False
    req = job.request
    if req.if_target_exists == "replace":
        return True
    shown = ", ".join(target.objects[:MESSAGE_OBJECTS])
    more = f" and {len(target.objects) - MESSAGE_OBJECTS} more" if len(target.objects) > MESSAGE_OBJECTS else ""
    only_empty = all(o.startswith(("table ", "sequence ")) for o in target.objects) and all(
        name == GOOSE_TABLE for name in target.non_empty_tables
    )
    hint = (
        " All its tables are empty (apart from the goose version table): this is what a newer Lamassu "
        "creates when it starts against the unified database before the copy; set if_target_exists=replace "
        "to replace them with the copy."
        if only_empty
        else f" Tables holding rows: {', '.join(target.non_empty_tables) or 'none'}."
    )
    raise InvalidInput(
        f"The target schema {req.target!r} of database {req.target_database!r} already holds objects and is "
        f"not a recorded copy of {req.source_database}.{req.source_schema}: {shown}{more}.{hint} Nothing was changed.",
        fix=Fix("if_target_exists", "replace", "replaces the empty tables of a newer Lamassu with the copy")
        if only_empty
        else None,
    )


def extensions_needed(job: CopyJob, session: Session, catalog: SourceCatalog) -> list[tuple[str, str]]:
    """(name, schema) of source extensions missing in the target database; unavailable ones fail now."""
    installed = extension_schemas(session)
    available = {name for (name,) in session.fetch_all("SELECT name FROM pg_available_extensions")}
    needed = []
    for ext in catalog.extensions:
        if ext.name in installed:
            continue
        if ext.name not in available:
            raise InvalidInput(
                f"The source uses extension {ext.name!r}, which is not available on the server for database "
                f"{job.request.target_database!r}"
            )
        needed.append((ext.name, "public" if ext.schema == catalog.schema else ext.schema))
    return needed


def create_staging(job: CopyJob, session: Session, catalog: SourceCatalog, needed) -> sql.Composable:
    """The staging schema with the extensions it needs and the structure of its tables; returns its search_path."""
    staging = sql.Identifier(job.staging)
    with transaction(session.conn):
        session.execute(sql.SQL("CREATE SCHEMA {}").format(staging), what="staging schema")
        session.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(staging, sql.Literal(STAGING_MARKER)))
        if needed:  # copies of other services into this database may create the same extensions now
            xact_lock(session, EXTENSIONS_LOCK)
        for name, schema in needed:
            session.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            session.execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS {} SCHEMA {}").format(
                    sql.Identifier(name), sql.Identifier(schema)
                ),
                what=f"extension {name}",
            )
    path = search_path(job, session, catalog, needed)
    with transaction(session.conn):
        session.execute(path)
        for statement in ddl.pre_data(catalog, job.staging):
            session.execute(statement, what="structure")
    return path


def search_path(job: CopyJob, session: Session, catalog: SourceCatalog, needed) -> sql.Composable:
    """The reading path of the source (``catalog.reading_path``) translated to the target database."""
    where = {**dict(needed), **extension_schemas(session)}  # ``needed`` ones exist by now, unless in check mode
    translated = []
    for name in reading_path(catalog.schema, catalog.extensions):
        if name == catalog.schema:
            translated.append(job.staging)
        if name == "pg_catalog":
            translated.append(name)
        translated.extend(where[e.name] for e in catalog.extensions if e.schema == name and e.name in where)
    unique = dict.fromkeys(translated)
    return sql.SQL("SET search_path TO {}").format(sql.SQL(", ").join(sql.Identifier(p) for p in unique))


def publish(
    job: CopyJob, session: Session, journal: Journal, catalog: SourceCatalog, outcomes: list[TableOutcome], started_at
) -> None:
    """In one transaction: the staging schema (given its owner and grants in the final phase) takes the target's
    name and the comment of the schema it replaces (else the source's), the service role what it lacks
    (``access``); the journal records the copy. A target schema still there is replaced (``check_target``
    allowed it)."""
    req = job.request
    with transaction(session.conn):
        session.execute(sql.SQL("SET LOCAL synchronous_commit TO on"))
        existing = target_state(session, req.target)
        check_target(job, existing)
        oid = session.fetch_value("SELECT oid FROM pg_namespace WHERE nspname = %s", (job.staging,))
        target = sql.Identifier(req.target)
        if existing.exists:
            session.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(target), what="replaced target schema")
            journal.mark_replaced(existing.oid)
        session.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(job.staging), target), what="publish"
        )
        comment = existing.comment if existing.exists else catalog.schema_comment
        session.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(target, sql.Literal(comment)))
        owner, acl = access.published(req.owner, catalog, job.source_owner)  # given in the final phase
        access.ensure(session, job.service_role, req.target_database, req.target, owner, acl)
        journal.record_copy(
            CopyRecord(
                id=0,
                source_database=req.source_database,
                source_schema=req.source_schema,
                target_schema=req.target,
                target_schema_oid=oid,
                verify=req.verify,
                goose_version=catalog.goose_version,
                started_at=started_at,
                finished_at="",
                tables=[{**o.result(), "checksum": o.checksum} for o in outcomes],
                collection_version=COLLECTION_VERSION,
                source_stats=job.source_stats,
            )
        )
        job.hooks.pause("publish")
