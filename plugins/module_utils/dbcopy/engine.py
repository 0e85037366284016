# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The phases of a copy, in the order of ``phases.PHASES``: plan, freeze, snapshot, DDL, data (with each table's
indexes), verify, final DDL and sequences, publish, drop source.

Everything is built in a staging schema of the target database (named after
the target schema only, so a re-run finds the leftovers of an interrupted run
and drops them first), then published in one transaction that renames it to
the target name and writes the journal row. A session-level advisory lock in
the target database keeps two runs on the same target apart.

The other files of the copy are listed in ``docs/code-tour.md``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from .._compat import transaction
from .._pg import psycopg2, sql
from ..connection import ConnectionParams, connect
from ..errors import ConnectionFailed, InvalidInput, LamassuError, OperationFailed
from ..service_results import combined, failed_among
from ..session import Session
from . import access, ddl, freeze, online, removal, snapshot, source_changes, switch_verify, target
from .apply import Applier
from .catalog_model import SourceCatalog
from .hooks import Hooks
from .journal import CopyRecord, Journal
from .phases import APPLY, DATA, DDL, DROP_SOURCE, FINAL, FREEZE, PUBLISH, SNAPSHOT, VERIFY, phases_of
from .progress import progress_for
from .request import REMEDY, TABLE_RESULT_KEYS, CopyJob, CopyRequest, TableOutcome, database_exists
from .scheduler import Scheduler, start_load
from .snapshot import Snapshot


@dataclass
class _Run:
    """What the phases of one run hand on to each other."""

    session: Session
    journal: Journal
    catalog: SourceCatalog
    needed: list
    started_at: str | None = None
    coordinator: object = None  # the source connection that holds the exported snapshot
    source: Snapshot | None = None
    search_path: sql.Composable | None = None
    outcomes: list[TableOutcome] | None = None
    move: online.LiveMove | None = None  # the online move's row in the journal
    replication: object = None  # the online move's replication connection, which exported the snapshot

    def close_snapshot(self) -> None:
        for conn in (self.coordinator, self.replication):
            if conn is not None:
                conn.close()
        self.coordinator = self.replication = None


class Engine:
    """One run of the module for ``state: present``, phase by phase; ``job`` holds the run's state."""

    def __init__(self, job: CopyJob):
        self.job = job
        self.request = job.request
        self.locked = False

    def run(self) -> dict:
        job = self.job
        self.request.validate()
        conn = target.connect_target(job)
        # Check mode runs the same code on a dry-run session: ``queries`` lists what the real run would execute.
        session = Session(conn, job.queries, dry_run=job.check_mode)
        try:
            if not job.check_mode:
                target.lock(job, session)
                self.locked = True
            if self.request.state == "absent":
                return removal.absent(job, session)
            return self._present(session)
        except psycopg2.Error as exc:
            job.log(f"failed during phase {job.phase}")
            raise OperationFailed(
                f"{job.who()} failed during phase {job.phase}: {str(exc).strip()}", job.partial()
            ) from None
        except LamassuError as exc:
            job.log(f"failed during phase {job.phase}: {exc}")
            raise
        finally:
            if self.locked:  # now, rather than when the server process ends after the close
                with contextlib.suppress(psycopg2.Error):
                    conn.rollback()
                    conn.cursor().execute("SELECT pg_advisory_unlock_all()")
            conn.close()

    def _present(self, session: Session) -> dict:
        job, req = self.job, self.request
        access.check_roles(session, req)
        journal = Journal(session)
        record = journal.published(req.source_database, req.source_schema, req.target)
        source_exists = database_exists(session, req.source_database)
        job.source_owner = access.database_owner(session, req.source_database) if source_exists else None
        job.before = removal.found(session, record, req.source_database, source_exists)
        if req.online != "off":
            job.move_name = online.names(session, req.target)
        if record:
            job.source_changes = removal.source_changes_since(job, record.source_stats) if source_exists else None
            if not (job.source_changes and req.if_target_exists == "replace"):
                return self._already_copied(session, journal, record, source_exists)
            # The source took writes after its copy, and the operator asked for a new copy over the old one.
            job.log(f"the source changed since its copy: copying again ({job.source_changes[0]}, ...)")
            removal.refuse_losing_data(job, session, record, "replace")
        if job.source_changes is None:
            job.source_changes = []
        if not source_exists:
            raise InvalidInput(
                f"The source database {req.source_database!r} does not exist and the journal of database "
                f"{req.target_database!r} records no copy of it into schema {req.target!r}"
            )
        catalog = snapshot.plan_catalog(job)
        job.service_role = access.service_role(req.service_role, access.catalog_goose_owner(catalog), job.source_owner)
        existing = target.target_state(session, req.target)
        replace = target.check_target(job, existing)
        needed = target.extensions_needed(job, session, catalog)
        result = self._plan_result(session, catalog, existing, replace, needed) if job.check_mode else None
        journal.ensure()
        run = _Run(session, journal, catalog, needed)
        resume = self._online_start(run) if req.online != "off" else False
        if req.online == "off" and not job.check_mode and removal.drop_move(job, session):
            job.log("dropped the online move of an earlier run: this copy is offline")
        if not resume:
            target.drop_leftovers(job, session)
        outcomes, catalog = self._phases(run, resume)
        if result is not None:
            return result
        result = job.result(True, catalog.goose_version, [o.result() for o in outcomes])
        if run.move is not None:
            result["online"] = job.online_result(run.move)
        return result

    def _online_start(self, run: _Run) -> bool:
        """Whether the live copy of an earlier run is there to go on with (``live`` resumes it, ``switch`` needs
        it); leftovers of a live copy that cannot go on (killed while copying, its slot gone) are dropped."""
        job, req, session = self.job, self.request, run.session
        online.ensure(session)
        move = online.read(session, req.target)
        usable = move is not None and move.phase == online.LIVE and online.slot_exists(session, move.slot)
        if usable:
            run.move = move
            job.log(f"found the live copy of an earlier run (applied up to {move.applied_lsn})")
            return True
        if req.online == "switch" and job.check_mode:
            # Check mode plans the switch a real run would make after its live phase: the statements, no data.
            name = job.move_name
            run.move = online.LiveMove(req.target, req.source_database, name, name, online.LIVE, "0/0", "0/0")
            return True
        if req.online == "switch":
            raise InvalidInput(
                f"No live copy of {req.source_database!r} into schema {req.target!r} to switch to"
                + (
                    f" (the one recorded, {move.phase}, was not finished or its slot {move.slot} is gone)"
                    if move
                    else ""
                )
                + ": run the live phase first (online=live)"
            )
        if move is not None and not job.check_mode:
            job.log(f"dropping the unfinished live copy of an earlier run (slot {move.slot})")
            online.forget(job, session, move.slot)
        return False

    def _phases(self, run: _Run, resume: bool = False) -> tuple[list[TableOutcome], SourceCatalog]:
        """The phases after the plan, in the order of ``phases.phases_of``. Check mode rehearses the same list on
        the dry-run session: no snapshot (the plan's catalog stands in for it), the data phase as its statements."""
        job = self.job
        steps = {
            FREEZE: self._freeze,
            SNAPSHOT: self._snapshot,
            DDL: self._ddl,
            DATA: self._data,
            VERIFY: self._verify,
            FINAL: self._final,
            PUBLISH: self._publish,
            DROP_SOURCE: self._drop_source,
            APPLY: self._apply,
        }
        try:
            try:
                for phase in phases_of(self.request, resume):
                    job.phase = phase
                    steps[phase](run)
            finally:
                run.close_snapshot()
        except BaseException:
            if self.locked and job.phase not in (FREEZE, DROP_SOURCE):  # a staging schema may be left
                target.cleanup(job, run.session)
            if self.locked and self.request.online != "off" and not job.check_mode:
                online.forget(job, run.session, job.move_name)  # never a slot left behind by a failure
            raise
        return run.outcomes, run.catalog

    def _freeze(self, run: _Run) -> None:
        freeze.freeze(run.session, run.journal, self.request.source_database)
        self.job.frozen = True

    def _snapshot(self, run: _Run) -> None:
        job, req = self.job, self.request
        run.started_at = run.session.fetch_value("SELECT now()::text")
        if job.check_mode:
            if req.online == "live":
                online.rehearse(job, run.session, job.move_name, [t.name for t in run.catalog.tables])
            return
        imported = self._make_slot(run) if req.online == "live" else None
        run.coordinator = job.open_source("snapshot")
        run.source = snapshot.take(job, run.coordinator, imported)
        run.catalog = catalog = run.source.catalog
        total_bytes = sum(t.bytes for t in catalog.tables)
        job.progress.plan(len(catalog.tables), total_bytes)
        job.log(
            f"copying {len(catalog.tables)} tables ({total_bytes / 1e6:.1f} MB) with {req.jobs} jobs, verify={req.verify}"
        )

    def _make_slot(self, run: _Run) -> str:
        """The online move's publication and slot; returns the name of the snapshot the slot exported."""
        job, req = self.job, self.request
        name = job.move_name
        run.move = online.LiveMove(req.target, req.source_database, name, name, online.COPYING, "0/0", "0/0")
        online.begin(run.session, run.move)  # first: a kill from here on leaves a row that names the slot
        tables = [t.name for t in run.catalog.tables]
        run.replication, lsn, exported = online.create_slot(job, job.move_name, tables)
        online.slot_made(run.session, req.target, lsn)
        run.move.consistent_lsn = run.move.applied_lsn = lsn
        job.log(f"slot {job.move_name} made at {lsn}: copying from its snapshot while the services run")
        return exported

    def _ddl(self, run: _Run) -> None:
        self.job.hooks.pause("ddl")
        run.search_path = target.create_staging(self.job, run.session, run.catalog, run.needed)

    def _data(self, run: _Run) -> None:
        job = self.job
        if job.check_mode:
            run.outcomes = self._rehearse_data(run)
            return
        job.hooks.pause("data")
        run.outcomes = Scheduler(job, run.source, run.search_path).run()

    def _verify(self, run: _Run) -> None:
        if self.request.online == "switch":
            self._verify_changes(run)
            return
        problems = [o.problem for o in run.outcomes if o.problem]
        if problems:
            raise OperationFailed(
                f"Verification ({self.request.verify}) failed, nothing was published and the source is untouched: "
                + "; ".join(problems),
                self.job.partial(),
            )

    def _apply(self, run: _Run) -> None:
        job, req = self.job, self.request
        if job.check_mode:
            if req.online == "switch":
                self._switch_catalog(run)
            job.queries.append(online.start_statement(job.move_name))
            return
        if req.online == "switch":
            self._switch_catalog(run)
        elif run.move.phase == online.COPYING:  # the live copy is made and verified: from now on a re-run applies
            run.close_snapshot()
            run.move.structure = online.structure_digest(run.catalog)
            run.move.tables = [{**o.result(), "checksum": o.checksum} for o in run.outcomes]
            run.move.source_stats = job.source_stats
            online.copied(run.session, run.move)
        else:
            run.outcomes = recorded_outcomes(run.move)
        columns = {t.name: [c.name for c in t.columns if not c.generated] for t in run.catalog.tables}
        goal = online.source_position(job) if req.online == "switch" else None
        job.applied = Applier(job, run.move, columns).catch_up(goal)
        job.log(
            f"applied {job.applied.transactions} transactions ({job.applied.changes} changes) in "
            f"{job.applied.seconds:.1f} s, up to {job.applied.applied_lsn}; {job.applied.lag_bytes} bytes / "
            f"{job.applied.lag_s:.1f} s behind the source"
        )

    def _switch_catalog(self, run: _Run) -> None:
        """The switch, the source frozen: its catalog read again (the sequences as they are now) and compared
        with the one the live copy was made from; the live copy's tables as the outcomes to publish."""
        job, req = self.job, self.request
        run.started_at = run.move.started_at
        run.outcomes = recorded_outcomes(run.move)
        if not job.check_mode:
            run.catalog = snapshot.plan_catalog(job)  # after the freeze: the sequences as the switch leaves them
        run.search_path = target.search_path(job, run.session, run.catalog, run.needed)
        run.session.execute(run.search_path)
        if job.check_mode:
            return
        structure = online.structure_digest(run.catalog)
        if structure != run.move.structure:
            raise OperationFailed(
                f"The structure of source database {req.source_database!r} changed during the live copy (its "
                "tables, columns, constraints, indexes, types, views or sequences differ from the copy's): nothing "
                "was published and the slot is dropped. Run the live phase again (it copies anew), or move offline",
                job.partial(),
            )
        conn = job.open_source("stats")
        try:
            job.source_stats = source_changes.read(Session(conn, []), req.source_schema)
        finally:
            conn.close()

    def _verify_changes(self, run: _Run) -> None:
        """The switch's verification: the rows changed since the snapshot, and every table's row count."""
        job, req = self.job, self.request
        if job.check_mode:
            return
        conn = job.open_source("verify")
        try:
            keys = switch_verify.touched(run.session, req.target)
            checked = switch_verify.compare(run.catalog, Session(conn, []), run.session, job.staging, keys)
        finally:
            conn.close()
        if checked["problems"]:
            raise OperationFailed(
                "Verification of the switch failed, nothing was published and the source is untouched: "
                + "; ".join(checked["problems"]),
                job.partial(),
            )
        for outcome in run.outcomes:
            outcome.rows = checked["counts"].get(outcome.name, outcome.rows)
        job.switch_checked = checked["rows_checked"]

    def _final(self, run: _Run) -> None:
        self.job.hooks.pause("final")
        session, staging = run.session, self.job.staging
        if self.request.online == "switch":
            with transaction(session.conn):  # the rest was made by the live phase
                for statement in ddl.sequence_values(run.catalog, staging):
                    session.execute(statement, what="sequence values")
            return
        owner, acl = access.published(self.request.owner, run.catalog, self.job.source_owner)
        with transaction(session.conn):
            session.execute(run.search_path)
            for statement in access.schema_statements(staging, owner, acl):
                session.execute(statement, what="owner and grants of the schema")
            for statement in ddl.final(run.catalog, staging):
                session.execute(statement, what="constraints, views and grants")
            for statement in ddl.sequence_values(run.catalog, staging):
                session.execute(statement, what="sequence values")

    def _publish(self, run: _Run) -> None:
        job = self.job
        target.publish(job, run.session, run.journal, run.catalog, run.outcomes, run.started_at)
        run.close_snapshot()  # before drop_source, which refuses while a session is connected to the source
        if run.move is not None:
            online.finish(job, run.session, job.move_name)
        if not job.check_mode:
            job.source_changes = []  # this run's copy holds what the source holds
            job.log(f"published in {job.elapsed():.1f} s")

    def _drop_source(self, run: _Run) -> None:
        job = self.job
        if job.check_mode:
            # The copy being planned would read the source as it is now: nothing to lose yet.
            removal.drop_source(job, run.session, run.journal, [])
            return
        removal.drop_source(job, run.session, run.journal, removal.source_changes_since(job, job.source_stats))
        job.log("source database dropped")

    # ---------------------------------------------------------------- already copied
    def _already_copied(self, session: Session, journal: Journal, record: CopyRecord, source_exists: bool) -> dict:
        job, req = self.job, self.request
        changed = False
        if source_exists and removal.drop_move(job, session):
            changed = True  # an online move killed after its publish left its slot (which would also block a drop)
        if source_exists:
            job.frozen = (
                freeze.is_frozen(session, req.source_database) and journal.freeze_record(req.source_database)[0]
            )
            if req.freeze_source and not job.frozen:
                changed = True
                freeze.freeze(session, journal, req.source_database)
                job.frozen = True
            if req.drop_source:
                if record.verify == "none":
                    raise InvalidInput(
                        f"The recorded copy of {req.source_database!r} was not verified (verify=none); "
                        "drop_source needs a verified copy"
                    )
                changed = True
                removal.drop_source(job, session, journal, job.source_changes)  # read once, above
        else:
            job.source_dropped = True
        job.service_role = access.recorded_service_role(session, req, job.source_owner)
        if access.repair(session, job.service_role, req.target_database, req.target):
            changed = True
            job.log(f"granted the service role {job.service_role} what it lacked")
        job.log(f"already copied (journal entry {record.id}, {record.finished_at})")
        tables = [{k: t.get(k) for k in TABLE_RESULT_KEYS} for t in record.tables]
        result = job.result(changed, record.goose_version, tables)
        result["recorded"] = {"finished_at": record.finished_at, "verify": record.verify, "id": record.id}
        if job.source_changes:
            result["warnings"] = [
                f"The source database {req.source_database!r} changed after its copy into schema {req.target!r} "
                f"was recorded at {record.finished_at}: {source_changes.summary(job.source_changes)}. Those "
                f"writes are not in the copy: {REMEDY}"
            ]
        return result

    # ---------------------------------------------------------------- check mode
    def _plan_result(self, session: Session, catalog: SourceCatalog, existing, replace: bool, needed) -> dict:
        req = self.request
        tables = [
            {"name": t.name, "rows": t.estimated_rows, "bytes": t.bytes, "seconds": 0.0, "verified": False}
            for t in catalog.tables
        ]
        result = self.job.result(True, catalog.goose_version, tables)
        result["plan"] = {
            "staging_schema": self.job.staging,
            "tables": [{"name": t.name, "estimated_rows": t.estimated_rows, "bytes": t.bytes} for t in catalog.tables],
            "objects": ddl.objects_to_create(catalog),
            "extensions": [name for name, _schema in needed],
            "replace_target": replace,
            "target_exists": existing.exists,
            "target_database_exists": session.conn.info.dbname == req.target_database,  # else template1
            "freeze_source": req.freeze_source,
            "drop_source": req.drop_source,
        }
        self.job.frozen = req.freeze_source
        return result

    def _rehearse_data(self, run: _Run) -> list[TableOutcome]:
        """Check mode's data phase: the statements that load each table and build its indexes, largest first."""
        job, catalog = self.job, run.catalog
        conn = job.open_source("plan")
        try:
            pieces = snapshot.pieces(job, Session(conn, []), catalog)
        finally:
            conn.close()
        for table in sorted(catalog.tables, key=lambda t: (-t.bytes, t.name)):
            for _piece in pieces.get(table.name) or [None]:
                start_load(run.session, table, job.staging, split=table.name in pieces)
            for statement in ddl.table_post_data(table, job.staging):
                run.session.execute(statement)
        return [TableOutcome(t.name, t.estimated_rows, t.bytes, 0.0, False) for t in catalog.tables]


def recorded_outcomes(move: online.LiveMove) -> list[TableOutcome]:
    return [
        TableOutcome(t["name"], t["rows"], t["bytes"], t["seconds"], t["verified"], t.get("checksum"))
        for t in move.tables or []
    ]


def run_copy(
    params: ConnectionParams, request: CopyRequest, check_mode: bool = False, log=None, progress_file: str | None = None
) -> dict:
    """One run of the module; ``log`` receives its progress (start and end of each table), one line at a time;
    ``progress_file`` (outside check mode) is kept up to date with the tables and bytes done (``progress.py``)."""
    progress = progress_for(progress_file, check_mode)
    job = CopyJob(params, request, check_mode, Hooks.from_environment(check_mode), log, progress)
    progress.begin()
    try:
        result = Engine(job).run()
    except BaseException:
        progress.finish(None, failed=True)
        raise
    progress.finish(result["tables"])
    return result


def run_copies(params: ConnectionParams, requests: list[CopyRequest], check_mode: bool = False, log=None) -> dict:
    """Several copies in one run, one after the other (the module's ``services``): every request is checked before
    the first copy starts; the first failure stops the run, its error carrying in ``results`` what the copies
    before it returned and its own partial result. Each result names its target schema (``schema``)."""
    if not requests:
        raise InvalidInput("services is empty: name at least one service to copy")
    for request in requests:
        request.validate()
    check_roles(params, requests)
    results: list[dict] = []
    for request in requests:
        try:
            results.append({"schema": request.target, **run_copy(params, request, check_mode, log)})
        except LamassuError as exc:
            raise failed_among(exc, request.target, results) from None
    return {**combined(results), "duration_s": round(sum(result.get("duration_s") or 0 for result in results), 3)}


def check_roles(params: ConnectionParams, requests: list[CopyRequest]) -> None:
    """Every ``owner`` and ``service_role`` of the run exists, before the first copy starts; without a target
    database to ask, each copy checks its own."""
    try:
        conn = connect(params, requests[0].target_database)
    except ConnectionFailed:
        return
    try:
        for request in requests:
            access.check_roles(Session(conn, []), request)
    finally:
        conn.close()
