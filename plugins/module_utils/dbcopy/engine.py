# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The phases of a copy: plan -> freeze -> snapshot -> DDL -> data (+ per-table indexes) -> final DDL
-> sequences -> verify -> publish -> drop source.

Everything is built in a staging schema of the target database (named after
the target schema only, so a re-run finds the leftovers of an interrupted run
and drops them first), then published in one transaction that renames it to
the target name and writes the journal row. A session-level advisory lock in
the target database keeps two runs on the same target apart.

Test hook: with ``LAMASSU_DBCOPY_PAUSE_AT=<phase>`` and
``LAMASSU_DBCOPY_PAUSE_FILE=<path>`` in the module's environment, the run
creates ``<path>`` when it reaches ``<phase>`` (``ddl``, ``data`` (before the
first table), ``copy`` (in the middle of the first table's COPY stream),
``index`` (after the first index of a table is built, its transaction open),
``verify``, ``final``, ``publish``) and waits until the file is removed (at most
``PAUSE_SECONDS``): tests use it to interrupt or disturb a run at a known point.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
import os
import threading
import time
from dataclasses import asdict, dataclass, field

from .._pg import extensions, psycopg2, sql
from ..connection import ConnectionParams, connect
from ..errors import ConnectionFailed, InvalidInput, LamassuError, OperationFailed
from ..lamassu import COLLECTION_VERSION, GOOSE_TABLE, JOURNAL_SCHEMA
from ..names import check_identifier
from ..session import Session
from . import ddl, freeze, source_changes, verify
from .catalog import (
    SourceCatalog,
    Table,
    acl_expr,
    extension_schemas,
    grants_from_rows,
    read_catalog,
    reading_path,
)
from .journal import CopyRecord, Journal
from .stream import RowHashes, StreamError, copy_in, copy_out, ctid_range, page_ranges, prepare_session, stream

STAGING_PREFIX = "lamassu_stage_"
STAGING_MARKER = "lamassuiot.postgres db_to_schema staging schema; dropped by the next run"
LOCK_NAMESPACE = "lamassuiot.postgres db_to_schema"
EXTENSIONS_LOCK = "lamassuiot.postgres db_to_schema extensions"
APPLICATION = "lamassuiot.postgres db_to_schema"
PAUSE_AT_ENV = "LAMASSU_DBCOPY_PAUSE_AT"
PAUSE_FILE_ENV = "LAMASSU_DBCOPY_PAUSE_FILE"
PAUSE_SECONDS = 300
SOURCE_LOCK_TIMEOUT = "60s"
LOCK_RETRY_SECONDS = 5
MESSAGE_OBJECTS = 20
NEW_DATABASE_TEMPLATE = "template1"  # what CREATE DATABASE copies when no TEMPLATE is named
# Tables whose heap reaches SPLIT_MIN_BYTES are copied in pieces of page ranges by several workers at once
# (TID range scans, PostgreSQL 14+), SPLIT_PIECES_PER_JOB pieces per worker at most, pieces of at least
# SPLIT_PIECE_BYTES.
SPLIT_MIN_BYTES = 32 << 20
SPLIT_PIECE_BYTES = 16 << 20
SPLIT_PIECES_PER_JOB = 2
# Values that TOAST tries to compress: lz4 (PG 14+, when the server has it) gives up on incompressible data
# (certificates) in a fraction of the time pglz takes; values read back are the same either way.
TOAST_LZ4 = """SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings
WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)"""
SPLIT_ENV = "LAMASSU_DBCOPY_SPLIT_MIN_BYTES"
REMEDY = (
    "copy it again with if_target_exists=replace (playbooks: -e db_to_schema_if_target_exists=replace), or accept "
    "losing those writes with accept_source_changes=true (playbooks: -e lamassu_accept_source_changes=true)"
)


class _TableRun:
    """One table on its way through the workers: copied whole, or in pieces by several workers at once."""

    def __init__(self, table: Table, pieces: int, split: bool):
        self.table = table
        self.pieces = pieces
        self.split = split
        self.left = pieces
        self.lock = threading.Lock()
        self.began = 0.0
        self.rows_out = 0
        self.rows_in = 0
        self.hashed_records = False  # checksum with hash_record_extended (else the hash of the row's text)
        self.source = verify.Sums()
        self.target = verify.Sums()
        self.outcome: TableOutcome | None = None

    def start(self) -> bool:
        """Mark the table started; true for the first of its pieces."""
        with self.lock:
            if self.began:
                return False
            self.began = time.monotonic()
            return True

    def piece_done(self) -> bool:
        """Count one piece of the current step as done; true for the last one."""
        with self.lock:
            self.left -= 1
            return self.left == 0


@dataclass
class _Task:
    kind: str  # copy (a table or a piece of it), check (read a piece of the loaded copy back), finish
    run: _TableRun
    where: sql.Composable | None = None


class _WorkQueue:
    """Tasks by priority; tasks may add tasks, so the workers stop when none is queued or running."""

    def __init__(self):
        self._heap: list = []
        self._ready = threading.Condition()
        self._outstanding = 0
        self._order = itertools.count()

    def put(self, priority: tuple, task: _Task) -> None:
        with self._ready:
            self._outstanding += 1
            heapq.heappush(self._heap, (priority, next(self._order), task))
            self._ready.notify()

    def size(self) -> int:
        with self._ready:
            return len(self._heap)

    def get(self, stop: threading.Event) -> _Task | None:
        """The next task; ``None`` once all are done or ``stop`` is set."""
        with self._ready:
            while not stop.is_set():
                if self._heap:
                    return heapq.heappop(self._heap)[2]
                if not self._outstanding:
                    return None
                self._ready.wait(0.1)
        return None

    def done(self) -> None:
        with self._ready:
            self._outstanding -= 1
            if not self._outstanding:
                self._ready.notify_all()


def staging_name(target_schema: str) -> str:
    """Deterministic per target schema; a hash suffix keeps long names unique within 63 bytes."""
    name = STAGING_PREFIX + target_schema
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha256(target_schema.encode()).hexdigest()[:8]
    head = name.encode()[: 63 - 9].decode("utf-8", "ignore")
    return f"{head}_{digest}"


@dataclass(frozen=True)
class CopyRequest:
    source_database: str
    source_schema: str = "public"
    target_database: str = "lamassu"
    target_schema: str | None = None
    state: str = "present"
    jobs: int = 2
    verify: str = "checksum"
    freeze_source: bool = False
    if_target_exists: str = "fail"
    drop_source: bool = False
    discard_changes: bool = False
    accept_source_changes: bool = False

    @property
    def target(self) -> str:
        return self.target_schema or self.source_database

    def validate(self) -> None:
        check_identifier(self.source_database, "source database", allow_system=True)
        check_identifier(self.source_schema, "source schema", allow_system=True)
        check_identifier(self.target_database, "target database", allow_system=True)
        check_identifier(self.target, "target schema")
        if self.target.startswith(STAGING_PREFIX) or self.target == JOURNAL_SCHEMA:
            raise InvalidInput(f"The target schema name {self.target!r} is reserved for the copy's own use")
        if self.source_database == self.target_database:
            raise InvalidInput(
                f"The source and target database are both {self.source_database!r}; the copy moves a schema "
                "into another database"
            )
        if self.jobs < 1:
            raise InvalidInput(f"jobs must be at least 1, not {self.jobs}")
        if self.verify not in verify.VERIFY_MODES:
            raise InvalidInput(f"verify must be one of {', '.join(verify.VERIFY_MODES)}")
        if self.drop_source and self.verify == "none":
            raise InvalidInput("drop_source needs a verified copy: use verify=count or verify=checksum")
        if self.discard_changes and self.state != "absent" and self.if_target_exists != "replace":
            raise InvalidInput("discard_changes only applies to state=absent or if_target_exists=replace")


@dataclass
class TargetState:
    exists: bool
    oid: int | None = None
    owner: str | None = None
    acl: list | None = None
    comment: str | None = None
    objects: list[str] = field(default_factory=list)
    non_empty_tables: list[str] = field(default_factory=list)


@dataclass
class TableOutcome:
    name: str
    rows: int
    bytes: int
    seconds: float
    verified: bool
    checksum: str | None = None
    problem: str | None = None


class Engine:
    """One run of the module; holds the per-run state (queries, timings, connections)."""

    def __init__(self, params: ConnectionParams, request: CopyRequest, check_mode: bool = False, log=None):
        self.params = params
        self.request = request
        self.check_mode = check_mode
        self._log_to = log or (lambda message: None)
        self.queries: list[str] = []
        self.started = time.monotonic()
        self.phase = "plan"
        self.staging = staging_name(request.target)
        self.locked = False
        self._paused: set[str] = set()
        self._pause_lock = threading.Lock()
        self.frozen = False
        self.source_dropped = False
        self.source_stats: dict | None = None  # the source's counters at the snapshot of this run's copy
        self.source_changes: list[str] | None = None  # since the recorded copy; None while not known

    # ---------------------------------------------------------------- entry point
    def run(self) -> dict:
        self.request.validate()
        conn = self._connect_target()
        # Check mode runs the same code on a dry-run session: ``queries`` lists what the real run would execute.
        session = Session(conn, self.queries, dry_run=self.check_mode)
        try:
            if not self.check_mode:
                self._lock(session)
            if self.request.state == "absent":
                return self._absent(session)
            return self._present(session)
        except psycopg2.Error as exc:
            self._log(f"failed during phase {self.phase}")
            raise OperationFailed(
                f"{self._who()} failed during phase {self.phase}: {str(exc).strip()}", self._partial()
            ) from None
        except LamassuError as exc:
            self._log(f"failed during phase {self.phase}: {exc}")
            raise
        finally:
            if self.locked:  # now, rather than when the server process ends after the close
                with contextlib.suppress(psycopg2.Error):
                    conn.rollback()
                    conn.cursor().execute("SELECT pg_advisory_unlock_all()")
            conn.close()

    def _connect_target(self):
        try:
            return connect(self.params, self.request.target_database)
        except ConnectionFailed as exc:
            if "does not exist" not in str(exc):
                raise
            missing = InvalidInput(
                f"The target database {self.request.target_database!r} does not exist; "
                "create it first with lamassuiot.postgres.postgres_lamassu_schema"
            )
        if not self.check_mode or self.request.state != "present":
            raise missing
        # Check mode plans against template1, which the schema module's CREATE DATABASE copies: the same
        # extensions and schemas, and no journal.
        try:
            conn = connect(self.params, NEW_DATABASE_TEMPLATE)
        except ConnectionFailed:
            raise missing from None
        return conn

    def _lock(self, session: Session) -> None:
        """Take the target's advisory lock, or fail naming the server process that holds it.

        A lock whose holder is no longer listed belongs to a run that has just closed its connection (its
        server process ends a moment later): that one is tried again for up to ``LOCK_RETRY_SECONDS``.
        """
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        while not session.fetch_value(
            "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))", (LOCK_NAMESPACE, self.request.target)
        ):
            holder = session.fetch_value(
                """
                SELECT string_agg(l.pid::text, ', ') FROM pg_locks l
                WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND l.classid = (hashtext(%s)::bigint & 4294967295)::text::oid
                  AND l.objid = (hashtext(%s)::bigint & 4294967295)::text::oid AND l.objsubid = 2
                """,
                (LOCK_NAMESPACE, self.request.target),
            )
            if holder or time.monotonic() > deadline:
                raise OperationFailed(
                    f"A copy into schema {self.request.target!r} of database {self.request.target_database!r} is "
                    f"already in progress (server process {holder or 'unknown'} holds its lock); nothing was changed"
                )
            time.sleep(0.1)
        self.locked = True

    # ---------------------------------------------------------------- results
    def _base_result(self, changed: bool, goose_version=None, tables=None) -> dict:
        req = self.request
        return {
            "changed": changed,
            "source": {
                "database": req.source_database,
                "schema": req.source_schema,
                "goose_version": goose_version,
                "frozen": self.frozen,
                "dropped": self.source_dropped,
            },
            "target": {"database": req.target_database, "schema": req.target},
            "tables": tables or [],
            "source_changed": bool(self.source_changes) if self.source_changes is not None else None,
            "source_changes": self.source_changes or [],
            "duration_s": round(time.monotonic() - self.started, 3),
            "dsn": self.params.dsn(req.target_database, req.target),
            "queries": self.queries,
        }

    def _partial(self) -> dict:
        return {"queries": self.queries, "phase": self.phase}

    @property
    def _route(self) -> str:
        req = self.request
        return f"{req.source_database}.{req.source_schema} -> {req.target_database}.{req.target}"

    def _who(self) -> str:
        """Which copy, and as which login role: a privilege error names neither."""
        return f"The copy {self._route} (login role {self.params.user!r})"

    @property
    def _application(self) -> str:
        """The start of the ``application_name`` of every session of this run; each adds its role."""
        return f"{APPLICATION} {self.request.source_database}->{self.request.target}"

    def _log(self, message: str) -> None:
        self._log_to(f"db_to_schema {self._route}: {message}")

    # ---------------------------------------------------------------- state=present
    def _present(self, session: Session) -> dict:
        req = self.request
        journal = Journal(session)
        record = journal.published(req.source_database, req.source_schema, req.target)
        source_exists = self._database_exists(session, req.source_database)
        if record:
            self.source_changes = self._source_changes(record.source_stats) if source_exists else None
            if not (self.source_changes and req.if_target_exists == "replace"):
                return self._already_copied(session, journal, record, source_exists)
            # The source took writes after its copy, and the operator asked for a new copy over the old one.
            self._log(f"the source changed since its copy: copying again ({self.source_changes[0]}, ...)")
            self._refuse_losing_data(session, record, "replace")
        if self.source_changes is None:
            self.source_changes = []
        if not source_exists:
            raise InvalidInput(
                f"The source database {req.source_database!r} does not exist and the journal of database "
                f"{req.target_database!r} records no copy of it into schema {req.target!r}"
            )
        catalog = self._plan_catalog()
        target = self._target_state(session, req.target)
        replace = self._check_target(target)
        needed = self._extensions_needed(session, catalog)
        if self.check_mode:
            result = self._plan_result(session, catalog, target, replace, needed)
            self._rehearse(session, journal, catalog, needed)
            return result
        journal.ensure()
        self._drop_leftovers(session)
        if req.freeze_source:
            self.phase = "freeze"
            freeze.freeze(session, journal, req.source_database)
            self.frozen = True
        try:
            outcomes, catalog = self._copy(session, journal, needed)
        except BaseException:
            self._cleanup(session)
            raise
        self.source_changes = []  # this run's copy holds what the source holds
        self._log(f"published in {time.monotonic() - self.started:.1f} s")
        if req.drop_source:
            self._drop_source(session, journal, self.source_stats)
            self._log("source database dropped")
        tables = [self._table_result(o) for o in outcomes]
        return self._base_result(True, catalog.goose_version, tables)

    def _already_copied(self, session: Session, journal: Journal, record: CopyRecord, source_exists: bool) -> dict:
        req = self.request
        changed = False
        if source_exists:
            self.frozen = (
                freeze.is_frozen(session, req.source_database) and journal.freeze_record(req.source_database)[0]
            )
            if req.freeze_source and not self.frozen:
                changed = True
                freeze.freeze(session, journal, req.source_database)
                self.frozen = True
            if req.drop_source:
                if record.verify == "none":
                    raise InvalidInput(
                        f"The recorded copy of {req.source_database!r} was not verified (verify=none); "
                        "drop_source needs a verified copy"
                    )
                changed = True
                self._drop_source(session, journal, record.source_stats)
        else:
            self.source_dropped = True
        self._log(f"already copied (journal entry {record.id}, {record.finished_at})")
        tables = [{k: t.get(k) for k in ("name", "rows", "bytes", "seconds", "verified")} for t in record.tables]
        result = self._base_result(changed, record.goose_version, tables)
        result["recorded"] = {"finished_at": record.finished_at, "verify": record.verify, "id": record.id}
        if self.source_changes:
            result["warnings"] = [
                f"The source database {req.source_database!r} changed after its copy into schema {req.target!r} "
                f"was recorded at {record.finished_at}: {source_changes.summary(self.source_changes)}. Those "
                f"writes are not in the copy: {REMEDY}"
            ]
        return result

    def _plan_result(
        self, session: Session, catalog: SourceCatalog, target: TargetState, replace: bool, needed
    ) -> dict:
        tables = [
            {"name": t.name, "rows": t.estimated_rows, "bytes": t.bytes, "seconds": 0.0, "verified": False}
            for t in catalog.tables
        ]
        result = self._base_result(True, catalog.goose_version, tables)
        result["plan"] = {
            "staging_schema": self.staging,
            "tables": [{"name": t.name, "estimated_rows": t.estimated_rows, "bytes": t.bytes} for t in catalog.tables],
            "objects": ddl.objects_to_create(catalog),
            "extensions": [name for name, _schema in needed],
            "replace_target": replace,
            "target_exists": target.exists,
            "target_database_exists": session.conn.info.dbname == self.request.target_database,  # else template1
            "freeze_source": self.request.freeze_source,
            "drop_source": self.request.drop_source,
        }
        self.frozen = self.request.freeze_source
        return result

    def _rehearse(self, session: Session, journal: Journal, catalog: SourceCatalog, needed) -> None:
        """Check mode: every phase of a real run on the dry-run session, the data phase as its statements."""
        journal.ensure()
        self._drop_leftovers(session)
        if self.request.freeze_source:
            freeze.freeze(session, journal, self.request.source_database)
        started_at = session.fetch_value("SELECT now()::text")
        self._ddl(session, catalog, needed)
        conn = self._open_source("plan")
        try:
            pieces = self._pieces(Session(conn, []), catalog)
        finally:
            conn.close()
        for table in sorted(catalog.tables, key=lambda t: (-t.bytes, t.name)):
            for _piece in pieces.get(table.name) or [None]:
                self._start_load(session, table, split=table.name in pieces)
            for statement in ddl.table_post_data(table, self.staging):
                session.execute(statement)
        self._final(session, catalog)
        planned = [TableOutcome(t.name, t.estimated_rows, t.bytes, 0.0, False) for t in catalog.tables]
        self._publish(session, journal, catalog, planned, started_at)
        if self.request.drop_source:
            self._drop_source(session, journal, self.source_stats)

    @staticmethod
    def _table_result(outcome: TableOutcome) -> dict:
        return {k: v for k, v in asdict(outcome).items() if k in ("name", "rows", "bytes", "seconds", "verified")}

    # ---------------------------------------------------------------- plan
    @staticmethod
    def _database_exists(session: Session, name: str) -> bool:
        return bool(session.fetch_value("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)))

    def _open_source(self, role: str):
        return self._open_reader(self.request.source_database, role)

    def _open_reader(self, database: str, role: str):
        """A read-only, repeatable-read connection with the copy's session settings."""
        conn = connect(self.params, database, autocommit=False)
        prepare_session(conn, f"{self._application} {role}")
        conn.set_session(isolation_level=extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        return conn

    def _plan_catalog(self) -> SourceCatalog:
        """Read the source once to fail early (before any change) on unsupported objects."""
        conn = self._open_source("plan")
        try:
            catalog = read_catalog(Session(conn, []), self.request.source_database, self.request.source_schema)
        finally:
            conn.close()
        self._refuse_unsupported(catalog)
        return catalog

    def _refuse_unsupported(self, catalog: SourceCatalog) -> None:
        if catalog.unsupported:
            raise InvalidInput(
                f"Schema {catalog.schema!r} of database {catalog.database!r} holds objects the copy does not "
                f"reproduce, so nothing was copied: {'; '.join(catalog.unsupported)}"
            )

    def _target_state(self, session: Session, schema: str) -> TargetState:
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

    def _check_target(self, target: TargetState) -> bool:
        """Whether publishing replaces an existing schema holding objects; raise when that is refused."""
        if not target.exists or not target.objects:
            return False
        if self.request.if_target_exists == "replace":
            return True
        req = self.request
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
            f"not a recorded copy of {req.source_database}.{req.source_schema}: {shown}{more}.{hint} Nothing was changed."
        )

    def _extensions_needed(self, session: Session, catalog: SourceCatalog) -> list[tuple[str, str]]:
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
                    f"{self.request.target_database!r}"
                )
            needed.append((ext.name, "public" if ext.schema == catalog.schema else ext.schema))
        return needed

    # ---------------------------------------------------------------- copy
    def _drop_leftovers(self, session: Session) -> None:
        marker = session.fetch_one(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", (self.staging,)
        )
        if marker is None:
            return
        if marker[0] != STAGING_MARKER:
            raise OperationFailed(
                f"Schema {self.staging!r} exists in database {self.request.target_database!r} but was not made by "
                "this module (its comment differs); it is the staging name of this copy: rename or drop it"
            )
        with session.conn:
            session.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.staging)), what="interrupted run"
            )

    def _cleanup(self, session: Session) -> None:
        """Best effort after a failure: drop the staging schema, on the locked connection or else a fresh one."""
        if not self.locked:
            return
        try:
            session.conn.rollback()
            self._drop_leftovers(session)
            return
        except (LamassuError, psycopg2.Error):
            pass
        try:
            conn = connect(self.params, self.request.target_database)
        except LamassuError:
            return
        try:
            fresh = Session(conn, self.queries)
            # The first connection is gone, so is its lock: take it again or leave the leftovers to the next run.
            if fresh.fetch_value(
                "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))", (LOCK_NAMESPACE, self.request.target)
            ):
                self._drop_leftovers(fresh)
        except (LamassuError, psycopg2.Error):
            pass
        finally:
            conn.close()

    def _copy(self, session: Session, journal: Journal, needed) -> tuple[list[TableOutcome], SourceCatalog]:
        req = self.request
        started_at = session.fetch_value("SELECT now()::text")
        self.phase = "snapshot"
        coordinator = self._open_source("snapshot")
        try:
            source = Session(coordinator, [])
            # The counters before anything else: this first statement also takes the snapshot the copy reads.
            self.source_stats = source_changes.read(source, req.source_schema)
            catalog = read_catalog(source, req.source_database, req.source_schema)
            self._refuse_unsupported(catalog)
            if catalog.tables:
                # Like pg_dump: no DDL on the source tables until the copy has read them.
                with coordinator.cursor() as cur:
                    cur.execute(sql.SQL("SET LOCAL lock_timeout TO {}").format(sql.Literal(SOURCE_LOCK_TIMEOUT)))
                    cur.execute(
                        sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
                            sql.SQL(", ").join(sql.Identifier(catalog.schema, t.name) for t in catalog.tables)
                        )
                    )
            snapshot = source.fetch_value("SELECT pg_export_snapshot()")
            pieces = self._pieces(source, catalog)
            hashed = self._hashable(coordinator, catalog) if req.verify == "checksum" else set()
            self._log(
                f"copying {len(catalog.tables)} tables ({sum(t.bytes for t in catalog.tables) / 1e6:.1f} MB) with "
                f"{req.jobs} jobs, verify={req.verify}"
            )
            self._ddl(session, catalog, needed)
            outcomes = self._copy_data(catalog, snapshot, pieces, hashed)
            self._verify(outcomes)
            self._final(session, catalog)
            self._publish(session, journal, catalog, outcomes, started_at)
        finally:
            coordinator.close()
        return outcomes, catalog

    def _pause(self, phase: str) -> None:
        if self.check_mode or os.environ.get(PAUSE_AT_ENV) != phase:
            return
        with self._pause_lock:  # once per run, whichever worker gets there first
            if phase in self._paused:
                return
            self._paused.add(phase)
        path = os.environ.get(PAUSE_FILE_ENV)
        if not path:
            return
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        deadline = time.monotonic() + PAUSE_SECONDS
        while os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _search_path(self, session: Session, catalog: SourceCatalog, needed) -> sql.Composable:
        """The reading path of the source (``catalog.reading_path``) translated to the target database."""
        where = {**dict(needed), **extension_schemas(session)}  # ``needed`` ones exist by now, unless in check mode
        translated = []
        for name in reading_path(catalog.schema, catalog.extensions):
            if name == catalog.schema:
                translated.append(self.staging)
            if name == "pg_catalog":
                translated.append(name)
            translated.extend(where[e.name] for e in catalog.extensions if e.schema == name and e.name in where)
        unique = dict.fromkeys(translated)
        return sql.SQL("SET search_path TO {}").format(sql.SQL(", ").join(sql.Identifier(p) for p in unique))

    def _ddl(self, session: Session, catalog: SourceCatalog, needed) -> None:
        self.phase = "ddl"
        self._pause("ddl")
        with session.conn:
            session.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.staging)), what="staging schema")
            session.execute(
                sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(self.staging), sql.Literal(STAGING_MARKER))
            )
            if needed:  # copies of other services into this database may create the same extensions now
                session.fetch_all("SELECT pg_advisory_xact_lock(hashtext(%s))", (EXTENSIONS_LOCK,))
            for name, schema in needed:
                session.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                session.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS {} SCHEMA {}").format(
                        sql.Identifier(name), sql.Identifier(schema)
                    ),
                    what=f"extension {name}",
                )
        self.search_path = self._search_path(session, catalog, needed)
        with session.conn:
            session.execute(self.search_path)
            for statement in ddl.pre_data(catalog, self.staging):
                session.execute(statement, what="structure")

    def _pieces(self, source: Session, catalog: SourceCatalog) -> dict[str, list[tuple[int | None, int | None]]]:
        """Page ranges of the tables big enough to be copied by several workers at once (TID range scans: PG 14+)."""
        if self.request.jobs < 2 or source.conn.server_version < 140000 or not catalog.tables:
            return {}
        sizes = source.fetch_all(
            """SELECT c.relname, pg_relation_size(c.oid), current_setting('block_size')::int FROM pg_class c
               WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s) AND c.relkind = 'r'""",
            (catalog.schema,),
        )
        threshold = int(os.environ.get(SPLIT_ENV) or SPLIT_MIN_BYTES)
        piece = max(1, min(SPLIT_PIECE_BYTES, threshold // 4))
        plan = {}
        for name, size, block in sizes:
            if size >= threshold and size >= 2 * block:
                count = min(SPLIT_PIECES_PER_JOB * self.request.jobs, max(2, size // piece))
                plan[name] = page_ranges(size // block, count)
        return plan

    @staticmethod
    def _hashable(coordinator, catalog: SourceCatalog) -> set[str]:
        """Tables whose columns all have built-in types with an extended hash function (hash_record_extended)."""
        if coordinator.server_version < 140000:
            return set()
        found = set()
        with coordinator.cursor() as cur:
            # Built-in types only: the hash of an enum value is the hash of its OID, which differs in the copy.
            for table in (t for t in catalog.tables if t.binary_safe):
                cur.execute("SAVEPOINT probe")
                try:
                    cur.execute(verify.probe_query(catalog.schema, table))
                    found.add(table.name)
                except psycopg2.Error as exc:
                    if exc.pgcode != verify.UNDEFINED_FUNCTION:
                        raise
                cur.execute("ROLLBACK TO SAVEPOINT probe")
        return found

    def _copy_data(self, catalog: SourceCatalog, snapshot: str, pieces: dict, hashed: set[str]) -> list[TableOutcome]:
        """Every table by ``jobs`` workers; a split table's pieces first, then its read-back, then its indexes."""
        self.phase = "data"
        self._pause("data")
        work = _WorkQueue()
        runs: dict[str, _TableRun] = {}
        for table in sorted(catalog.tables, key=lambda t: (-t.bytes, t.name)):
            ranges = pieces.get(table.name)
            runs[table.name] = run = _TableRun(table, len(ranges) if ranges else 1, bool(ranges))
            run.hashed_records = table.name in hashed
            for where in [ctid_range(first, end) for first, end in ranges] if ranges else [None]:
                work.put((1, -table.bytes), _Task("copy", run, where))
        failures: list[str] = []
        stop = threading.Event()
        workers = [
            threading.Thread(
                target=self._worker,
                args=(number, work, catalog, snapshot, failures, stop),
                name=f"copy-worker-{number}",
                daemon=True,
            )
            for number in range(min(self.request.jobs, max(work.size(), 1)))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise OperationFailed(f"{self._who()} failed: " + "; ".join(failures), self._partial())
        return [runs[t.name].outcome for t in catalog.tables]

    def _worker(self, number, work: _WorkQueue, catalog, snapshot, failures, stop) -> None:
        req = self.request
        source = target = None
        current = None
        try:
            source = self._open_source(f"worker {number}")
            with source.cursor() as cur:
                cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            target = connect(self.params, req.target_database, autocommit=False)
            prepare_session(target, f"{self._application} worker {number}")
            with target.cursor() as cur:
                cur.execute(self.search_path)
                cur.execute("SET synchronous_commit TO off")
                cur.execute(TOAST_LZ4)
            target.commit()
            while True:
                task = work.get(stop)
                if task is None:
                    break
                current = task.run.table
                try:
                    self._run_task(source, target, catalog, task, work)
                finally:
                    work.done()
                current = None
        except StreamError as exc:
            stop.set()
            failures.append(f"Copying table {current.name if current else '?'} failed on the {exc.side} side: {exc}")
        except (LamassuError, psycopg2.Error) as exc:
            stop.set()
            where = f"table {current.name}" if current else "a copy worker"
            failures.append(f"Copying {where} failed: {str(exc).strip()}")
        except BaseException as exc:
            stop.set()
            failures.append(f"Copy worker {number} failed unexpectedly: {exc!r}")
        finally:
            for conn in (source, target):
                if conn is not None:
                    with contextlib.suppress(psycopg2.Error):
                        conn.close()

    def _run_task(self, source, target, catalog: SourceCatalog, task: _Task, work: _WorkQueue) -> None:
        run = task.run
        if task.kind == "copy":
            self._copy_piece(source, target, catalog, task)
            if not run.piece_done():
                return
            if not run.split:
                self._finish(target, run)
                return
            self._pause("verify")
            if self.request.verify == "checksum":
                # Measure the loaded pieces in parallel before the indexes (ADD PRIMARY KEY would block the reads).
                ranges = page_ranges(self._pages(target, run.table), run.pieces)
                run.left = len(ranges)
                for first, end in ranges:
                    work.put((0, -run.table.bytes), _Task("check", run, ctid_range(first, end)))
            else:
                work.put((0, -run.table.bytes), _Task("finish", run))
        elif task.kind == "check":
            rows, total = self._measure_target(target, run, task.where)
            with run.lock:
                run.target.add(rows, total)
            if run.piece_done():
                work.put((0, -run.table.bytes), _Task("finish", run))
        else:
            self._finish(target, run)

    def _copy_piece(self, source, target, catalog: SourceCatalog, task: _Task) -> None:
        run = task.run
        table = run.table
        if run.start():
            self._log(
                f"table {table.name}: started ({table.bytes / 1e6:.1f} MB"
                + (f", {run.pieces} pieces)" if run.split else ")")
            )
        target_copy = self._start_load(Session(target, self.queries), table, run.split)
        hashes = row_hash = None
        if self.request.verify == "checksum":
            # The source side of the checksum comes with the rows: one read of the source.
            hashes = RowHashes(table.binary_safe)
            row_hash = verify.row_hash(table, run.hashed_records)
        source_copy = copy_out(table, catalog.schema, task.where, row_hash)
        result = stream(source, target, source_copy, target_copy, hashes, midway=lambda: self._pause("copy"))
        target.commit()
        with run.lock:
            run.rows_out += result.rows_out
            run.rows_in += result.rows_in
            if hashes is not None:
                run.source.add(hashes.rows, hashes.total)

    def _start_load(self, session: Session, table: Table, split: bool) -> sql.Composable:
        """Open the load of a table or of one of its pieces; returns the ``COPY … FROM STDIN`` to stream into."""
        if not split:
            # FREEZE needs the table truncated (or created) in the loading transaction.
            session.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(self.staging, table.name)), what=table.name)
        target_copy = copy_in(table, self.staging, freeze=not split)
        self.queries.append(session.render(target_copy))
        return target_copy

    def _measure_target(self, target, run: _TableRun, where) -> tuple[int, int]:
        with target.cursor() as cur:
            measured = verify.measure(cur, verify.checksum_query(self.staging, run.table, run.hashed_records, where))
        target.commit()
        return measured

    def _pages(self, target, table: Table) -> int:
        with target.cursor() as cur:
            cur.execute(
                "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int",
                (sql.Identifier(self.staging, table.name).as_string(target),),
            )
            pages = cur.fetchone()[0]
        target.commit()
        return pages

    def _finish(self, target, run: _TableRun) -> None:
        """Indexes and constraints of a loaded table, then its verification; sets ``run.outcome``."""
        table = run.table
        session = Session(target, self.queries)
        for statement in ddl.table_post_data(table, self.staging):
            session.execute(statement, what=f"indexes of table {table.name}")
            self._pause("index")
        target.commit()
        mode = self.request.verify
        source_check = target_check = None
        if mode == "count":
            if not run.split:
                self._pause("verify")
            with target.cursor() as cur:
                cur.execute(verify.count_query(self.staging, table.name))
                target_check = verify.TableCheck(cur.fetchone()[0])
            target.commit()
            source_check = verify.TableCheck(run.rows_out)
        elif mode == "checksum":
            if not run.split:
                self._pause("verify")
                run.target.add(*self._measure_target(target, run, None))
            source_check, target_check = run.source.check(), run.target.check()
        run.outcome = TableOutcome(
            name=table.name,
            rows=target_check.rows if target_check else run.rows_in,
            bytes=table.bytes,
            seconds=round(time.monotonic() - run.began, 3),
            verified=mode != "none",
            checksum=source_check.checksum if source_check else None,
            problem=verify.mismatch(table.name, source_check, target_check),
        )
        outcome = run.outcome
        self._log(
            f"table {table.name}: {outcome.rows} rows in {outcome.seconds} s, "
            + (outcome.problem or ("verified" if outcome.verified else "not verified"))
        )

    def _final(self, session: Session, catalog: SourceCatalog) -> None:
        self.phase = "final"
        self._pause("final")
        with session.conn:
            session.execute(self.search_path)
            for statement in ddl.final(catalog, self.staging):
                session.execute(statement, what="constraints, views and grants")
            for statement in ddl.sequence_values(catalog, self.staging):
                session.execute(statement, what="sequence values")

    def _verify(self, outcomes: list[TableOutcome]) -> None:
        self.phase = "verify"
        problems = [o.problem for o in outcomes if o.problem]
        if problems:
            raise OperationFailed(
                f"Verification ({self.request.verify}) failed, nothing was published and the source is untouched: "
                + "; ".join(problems),
                self._partial(),
            )

    def _publish(self, session: Session, journal: Journal, catalog, outcomes, started_at) -> None:
        self.phase = "publish"
        req = self.request
        with session.conn:
            session.execute(sql.SQL("SET LOCAL synchronous_commit TO on"))
            existing = self._target_state(session, req.target)
            self._check_target(existing)
            oid = session.fetch_value("SELECT oid FROM pg_namespace WHERE nspname = %s", (self.staging,))
            target = sql.Identifier(req.target)
            if existing.exists:
                session.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(target), what="replaced target schema")
                journal.mark_replaced(existing.oid)
            session.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(self.staging), target), what="publish"
            )
            owner = existing.owner if existing.exists else catalog.schema_owner
            acl = grants_from_rows(existing.acl) if existing.exists else catalog.schema_acl
            comment = existing.comment if existing.exists else catalog.schema_comment
            session.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(target, sql.Identifier(owner)))
            for statement in ddl.grant_statements("SCHEMA", target, owner, acl):
                session.execute(statement)
            session.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(target, sql.Literal(comment)))
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
                    tables=[{**self._table_result(o), "checksum": o.checksum} for o in outcomes],
                    collection_version=COLLECTION_VERSION,
                    source_stats=self.source_stats,
                )
            )
            self._pause("publish")

    # ---------------------------------------------------------------- drop source
    def _drop_source(self, session: Session, journal: Journal, recorded_stats: dict | None) -> None:
        req = self.request
        self.phase = "drop_source"
        if not self._database_exists(session, req.source_database):
            self.source_dropped = True
            return
        changes = [] if req.accept_source_changes else self._source_changes(recorded_stats)
        if changes:
            raise InvalidInput(
                f"Refusing to drop the source database {req.source_database!r}: it changed after its copy into "
                f"schema {req.target!r} ({source_changes.summary(changes)}), and those writes would be lost. "
                f"The database was kept. {REMEDY}"
            )
        if not session.dry_run:
            self._wait_own_sessions_gone(session, req.source_database)
        others = freeze.other_sessions(session, req.source_database)
        if others and not session.dry_run:
            raise OperationFailed(
                f"Refusing to drop the source database {req.source_database!r}: other sessions are connected: "
                + "; ".join(others),
                {**self._base_result(True), "queries": self.queries},
            )
        session.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(req.source_database)), what="drop_source")
        self.source_dropped = True
        self.frozen = False
        with session.conn:
            journal.mark_source_dropped(req.source_database)
            journal.forget_freeze(req.source_database)

    def _wait_own_sessions_gone(self, session: Session, database: str) -> None:
        """This run's closed connections stay listed until their server processes exit: wait for that a moment."""
        prefix = f"{self._application} "[:63]  # as prepare_session cuts it
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        while time.monotonic() < deadline and session.fetch_value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND starts_with(application_name, %s)",
            (database, prefix),
        ):
            time.sleep(0.05)

    # ---------------------------------------------------------------- state=absent
    def _absent(self, session: Session) -> dict:
        req = self.request
        journal = Journal(session)
        record = journal.published(req.source_database, req.source_schema, req.target)
        target = self._target_state(session, req.target)
        changed = False
        if record:
            self._refuse_losing_data(session, record)
            changed = True
            with session.conn:
                session.execute(
                    sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(req.target)), what="state=absent"
                )
                journal.mark_removed(record.id)
        elif target.exists:
            raise InvalidInput(
                f"Refusing to remove schema {req.target!r} of database {req.target_database!r}: the journal records "
                f"no copy of {req.source_database}.{req.source_schema} into it. Nothing was changed."
            )
        leftovers = session.fetch_value("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (self.staging,))
        if leftovers:
            self._drop_leftovers(session)
            changed = True
        changed = freeze.thaw(session, journal, req.source_database) or changed
        self.frozen = False
        return self._base_result(changed, record.goose_version if record else None)

    def _source_changes(self, recorded_stats: dict | None) -> list[str]:
        """What the source took since the copy whose counters are ``recorded_stats`` (``[]``: nothing)."""
        conn = self._open_source("compare")
        try:
            return source_changes.compare(
                recorded_stats, source_changes.read(Session(conn, []), self.request.source_schema)
            )
        finally:
            conn.close()

    def _refuse_losing_data(self, session: Session, record: CopyRecord, verb: str = "remove") -> None:
        """A copy is removed or replaced only while the source still holds its data and nothing changed since."""
        req = self.request
        where = f"Refusing to {verb} schema {req.target!r} of database {req.target_database!r}"
        if record.source_dropped_at or not self._database_exists(session, req.source_database):
            raise InvalidInput(
                f"{where}: the source database {req.source_database!r} was dropped after the copy, so this schema "
                "holds the only copy of its data. Nothing was changed."
            )
        if req.discard_changes:
            return
        self.phase = "compare"
        changes = self._changes_since_copy(record)
        if changes:
            shown = "; ".join(changes[:MESSAGE_OBJECTS])
            more = f"; and {len(changes) - MESSAGE_OBJECTS} more" if len(changes) > MESSAGE_OBJECTS else ""
            raise InvalidInput(
                f"{where}: it changed since the copy of {req.source_database}.{req.source_schema} recorded at "
                f"{record.finished_at} ({shown}{more}). Those changes are not in the source database and would be "
                f"lost; set discard_changes=true to {verb} the schema anyway. Nothing was changed."
            )

    def _changes_since_copy(self, record: CopyRecord) -> list[str]:
        """Measure the target schema as the copy's verification did: row counts, and checksums where recorded."""
        req = self.request
        conn = self._open_reader(req.target_database, "compare")
        try:
            catalog = read_catalog(Session(conn, []), req.target_database, req.target)
            checksums = record.verify == "checksum"
            hashed = self._hashable(conn, catalog) if checksums else set()
            current = {}
            with conn.cursor() as cur:
                for table in catalog.tables:
                    if checksums:
                        rows, total = verify.measure(
                            cur, verify.checksum_query(req.target, table, table.name in hashed)
                        )
                        current[table.name] = verify.Sums(rows, total).check()
                    else:
                        cur.execute(verify.count_query(req.target, table.name))
                        current[table.name] = verify.TableCheck(cur.fetchone()[0])
            return verify.changes_since_copy(record.tables, current)
        finally:
            conn.close()


def run_copy(params: ConnectionParams, request: CopyRequest, check_mode: bool = False, log=None) -> dict:
    """One run of the module; ``log`` receives its progress (start and end of each table), one line at a time."""
    return Engine(params, request, check_mode, log).run()
