# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What removes data, and the checks that refuse to lose any: ``state: absent`` (the copy goes), ``drop_source``
(the source goes), and the comparisons of the copy and of the source with what the journal recorded."""

from __future__ import annotations

import time

from .._compat import transaction
from .._pg import sql
from ..errors import Fix, InvalidInput, OperationFailed
from ..session import Session
from . import freeze, online, source_changes, verify
from .catalog import read_catalog
from .journal import CopyRecord, Journal
from .phases import COMPARE, DROP_SOURCE
from .request import LOCK_RETRY_SECONDS, MESSAGE_OBJECTS, RECOPY, REMEDY, CopyJob, database_exists
from .snapshot import hashable
from .target import drop_leftovers, target_state


def found(session: Session, record: CopyRecord | None, source_database: str, source_exists: bool) -> dict:
    """The copy and its source as the run finds them: the ``before`` of the module's diff."""
    return {
        "copied": record is not None,
        "source_frozen": source_exists and freeze.is_frozen(session, source_database),
        "source_dropped": not source_exists,
    }


def absent(job: CopyJob, session: Session) -> dict:
    """Remove the recorded copy (unless that loses data), the staging leftovers, and the source's freeze."""
    req = job.request
    journal = Journal(session)
    record = journal.published(req.source_database, req.source_schema, req.target)
    target = target_state(session, req.target)
    job.before = found(session, record, req.source_database, database_exists(session, req.source_database))
    changed = False
    if record:
        refuse_losing_data(job, session, record)
        changed = True
        with transaction(session.conn):
            session.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(req.target)), what="state=absent")
            journal.mark_removed(record.id)
    elif target.exists:
        raise InvalidInput(
            f"Refusing to remove schema {req.target!r} of database {req.target_database!r}: the journal records "
            f"no copy of {req.source_database}.{req.source_schema} into it. Nothing was changed."
        )
    leftovers = session.fetch_value("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (job.staging,))
    if leftovers:
        drop_leftovers(job, session)
        changed = True
    changed = drop_move(job, session) or changed
    changed = freeze.thaw(session, journal, req.source_database) or changed
    job.frozen = False
    return job.result(changed, record.goose_version if record else None)


def drop_move(job: CopyJob, session: Session) -> bool:
    """The online move's slot, publication and journal row, whatever state the move was left in."""
    if not database_exists(session, job.request.source_database):
        return False
    name = job.move_name or online.names(session, job.request.target)
    if online.read(session, job.request.target) is None and not online.slot_exists(session, name):
        return False  # the journal row is made before slot and publication and dropped after them: none left
    if online.finish(job, session, name):
        job.log(f"dropped the online move's slot and publication {name}")
        return True
    return False


def drop_source(job: CopyJob, session: Session, journal: Journal, changes: list[str]) -> None:
    """Drop the source database, unless it took writes after its copy (``changes``, ``source_changes_since``)."""
    req = job.request
    job.phase = DROP_SOURCE
    if not database_exists(session, req.source_database):
        job.source_dropped = True
        return
    if changes and not req.accept_source_changes:
        raise InvalidInput(
            f"Refusing to drop the source database {req.source_database!r}: it changed after its copy into "
            f"schema {req.target!r} ({source_changes.summary(changes)}), and those writes would be lost. "
            f"The database was kept. {REMEDY}",
            fix=RECOPY,
        )
    if not session.dry_run:
        _wait_own_sessions_gone(job, session, req.source_database)
    others = freeze.other_sessions(session, req.source_database)
    if others and not session.dry_run:
        raise OperationFailed(
            f"Refusing to drop the source database {req.source_database!r}: other sessions are connected: "
            + "; ".join(others),
            {**job.result(True), "queries": job.queries},
        )
    session.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(req.source_database)), what="drop_source")
    job.source_dropped = True
    job.frozen = False
    with transaction(session.conn):
        journal.mark_source_dropped(req.source_database)
        journal.forget_freeze(req.source_database)


def _wait_own_sessions_gone(job: CopyJob, session: Session, database: str) -> None:
    """This run's closed connections stay listed until their server processes exit: wait for that a moment."""
    prefix = f"{job.application} "[:63]  # as prepare_session cuts it
    deadline = time.monotonic() + LOCK_RETRY_SECONDS
    while time.monotonic() < deadline and session.fetch_value(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND starts_with(application_name, %s)",
        (database, prefix),
    ):
        time.sleep(0.05)


def source_changes_since(job: CopyJob, recorded_stats: dict | None) -> list[str]:
    """What the source took since the copy whose counters are ``recorded_stats`` (``[]``: nothing)."""
    conn = job.open_source("compare")
    try:
        return source_changes.compare(recorded_stats, source_changes.read(Session(conn, []), job.request.source_schema))
    finally:
        conn.close()


def refuse_losing_data(job: CopyJob, session: Session, record: CopyRecord, verb: str = "remove") -> None:
    """A copy is removed or replaced only while the source still holds its data and nothing changed since."""
    req = job.request
    where = f"Refusing to {verb} schema {req.target!r} of database {req.target_database!r}"
    if record.source_dropped_at or not database_exists(session, req.source_database):
        raise InvalidInput(
            f"{where}: the source database {req.source_database!r} was dropped after the copy, so this schema "
            "holds the only copy of its data. Nothing was changed."
        )
    if req.discard_changes:
        return
    job.phase = COMPARE
    changes = _changes_since_copy(job, record)
    if changes:
        shown = "; ".join(changes[:MESSAGE_OBJECTS])
        more = f"; and {len(changes) - MESSAGE_OBJECTS} more" if len(changes) > MESSAGE_OBJECTS else ""
        raise InvalidInput(
            f"{where}: it changed since the copy of {req.source_database}.{req.source_schema} recorded at "
            f"{record.finished_at} ({shown}{more}). Those changes are not in the source database and would be "
            f"lost; set discard_changes=true to {verb} the schema anyway. Nothing was changed.",
            fix=Fix("discard_changes", True, f"{verb}s the schema anyway, losing its changes since the copy"),
        )


def _changes_since_copy(job: CopyJob, record: CopyRecord) -> list[str]:
    """Measure the target schema as the copy's verification did: row counts, and checksums where recorded."""
    req = job.request
    conn = job.open_reader(req.target_database, "compare")
    try:
        catalog = read_catalog(Session(conn, []), req.target_database, req.target)
        checksums = record.verify == "checksum"
        hashed = hashable(conn, catalog) if checksums else set()
        current = {}
        with conn.cursor() as cur:
            for table in catalog.tables:
                if checksums:
                    rows, total = verify.measure(cur, verify.checksum_query(req.target, table, table.name in hashed))
                    current[table.name] = verify.Sums(rows, total).check()
                else:
                    cur.execute(verify.count_query(req.target, table.name))
                    current[table.name] = verify.TableCheck(cur.fetchone()[0])
        return verify.changes_since_copy(record.tables, current)
    finally:
        conn.close()
