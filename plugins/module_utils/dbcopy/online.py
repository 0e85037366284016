# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The online move's state: its publication and logical replication slot in the source, its row in the journal.

``online: live`` copies from the snapshot that the slot exports when it is made (so every change after the
snapshot is in the slot, none before), keeps the staging schema unpublished and applies the slot's changes
(``apply.py``); ``online: switch`` applies the rest once the source is frozen, then publishes. Between the two,
and after a kill, the journal table ``lamassu.ONLINE_TABLE`` says how far the move got:

* ``copying``: the slot exists, the copy was not finished; a re-run drops slot, publication and staging and
  starts again (the snapshot the copy read is gone with its connection);
* ``live``: the staging schema holds the copy and every source transaction up to ``applied_lsn``; a re-run
  applies from there. ``applied_lsn`` is written in the same transaction as the changes it covers, and the slot
  is told only after that commit, so a killed apply applies nothing twice and skips nothing.

The rows each change touched are kept beside it (``ONLINE_ROWS_TABLE``), so the switch verifies exactly them.
Slot and publication are named after the target (``lamassu.move_slot_name``): a re-run finds its own. Every
way out drops them: the publish, a failure (``forget``), ``state: absent`` and the playbooks' rollback/cleanup.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict, dataclass

from .. import online_checks
from .._compat import transaction
from .._pg import extras, psycopg2, sql
from ..connection import connect
from ..lamassu import JOURNAL_SCHEMA, ONLINE_TABLE, move_slot_name
from ..session import Session
from .catalog_model import SourceCatalog
from .pgoutput import SESSION_OPTIONS, lsn_to_int

ONLINE_ROWS_TABLE = "db_to_schema_online_rows"
COPYING = "copying"
LIVE = "live"
PLUGIN = "pgoutput"
# Facts of the catalog that change without a change of structure: left out of its digest.
VOLATILE = ("estimated_rows", "bytes", "last_value", "is_called", "oid")
SLOT_RELEASE_SECONDS = 10

DDL = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    """CREATE TABLE IF NOT EXISTS {schema}.{online} (
        target_schema text PRIMARY KEY,
        source_database text NOT NULL,
        slot text NOT NULL,
        publication text NOT NULL,
        phase text NOT NULL CHECK (phase IN ('copying', 'live')),
        consistent_lsn pg_lsn NOT NULL,
        applied_lsn pg_lsn NOT NULL,
        structure text,
        tables jsonb,
        source_stats jsonb,
        transactions bigint NOT NULL DEFAULT 0,
        changes bigint NOT NULL DEFAULT 0,
        started_at timestamptz NOT NULL,
        copied_at timestamptz,
        applied_at timestamptz)""",
    """CREATE TABLE IF NOT EXISTS {schema}.{rows} (
        target_schema text NOT NULL,
        table_name text NOT NULL,
        key text NOT NULL,
        PRIMARY KEY (target_schema, table_name, key))""",
)


def compose(text: str) -> sql.Composable:
    return sql.SQL(text).format(
        schema=sql.Identifier(JOURNAL_SCHEMA),
        online=sql.Identifier(ONLINE_TABLE),
        rows=sql.Identifier(ONLINE_ROWS_TABLE),
    )


@dataclass
class LiveMove:
    """One row of the online table: a move between its live copy and its switch."""

    target_schema: str
    source_database: str
    slot: str
    publication: str
    phase: str
    consistent_lsn: str
    applied_lsn: str
    structure: str | None = None
    tables: list | None = None
    source_stats: dict | None = None
    transactions: int = 0
    changes: int = 0
    started_at: str | None = None

    def summary(self) -> dict:
        return {
            "slot": self.slot,
            "publication": self.publication,
            "phase": self.phase,
            "consistent_lsn": self.consistent_lsn,
            "applied_lsn": self.applied_lsn,
            "transactions": self.transactions,
            "changes": self.changes,
        }


COLUMNS = (
    "target_schema, source_database, slot, publication, phase, consistent_lsn::text, applied_lsn::text, structure, "
    "tables, source_stats, transactions, changes, started_at::text"
)


def ensure(session: Session) -> None:
    with transaction(session.conn):
        for statement in DDL:
            session.execute(compose(statement), what="journal of live copies")


def read(session: Session, target: str) -> LiveMove | None:
    if target not in targets(session):
        return None
    row = session.fetch_one(compose(f"SELECT {COLUMNS} FROM {{schema}}.{{online}} WHERE target_schema = %s"), (target,))
    return LiveMove(*row) if row else None


def targets(session: Session) -> list[str]:
    """The target schemas of the online moves recorded in the session's database (live, or killed while copying)."""
    if not session.fetch_value("SELECT to_regclass(%s) IS NOT NULL", (f'"{JOURNAL_SCHEMA}"."{ONLINE_TABLE}"',)):
        return []
    return [name for (name,) in session.fetch_all(compose("SELECT target_schema FROM {schema}.{online} ORDER BY 1"))]


def names(session: Session, target: str) -> str:
    """The slot's (and the publication's) name of the move into ``target`` of the session's database."""
    oid = session.fetch_value("SELECT oid FROM pg_database WHERE datname = current_database()")
    return move_slot_name(oid, target)


def structure_digest(catalog: SourceCatalog) -> str:
    """What a change of structure in the source (a migration of the legacy database, say) changes."""

    def stable(value):
        if isinstance(value, dict):
            return {k: stable(v) for k, v in sorted(value.items()) if k not in VOLATILE}
        if isinstance(value, list):
            return [stable(v) for v in value]
        return value

    facts = {"tables": asdict_list(catalog.tables), "types": asdict_list(catalog.types)}
    facts["sequences"] = asdict_list(catalog.sequences)
    facts["views"] = asdict_list(catalog.views)
    text = json.dumps(stable(facts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def asdict_list(items) -> list:
    return [asdict(item) for item in items]


def begin(session: Session, move: LiveMove) -> None:
    """Record the move as copying, before the slot exists: a kill after it finds the row and drops the slot."""
    with transaction(session.conn):
        session.execute(compose("DELETE FROM {schema}.{rows} WHERE target_schema = %s"), (move.target_schema,))
        session.execute(
            compose(
                """INSERT INTO {schema}.{online} (target_schema, source_database, slot, publication, phase,
                   consistent_lsn, applied_lsn, started_at) VALUES (%s, %s, %s, %s, 'copying', '0/0', '0/0', now())
                   ON CONFLICT (target_schema) DO UPDATE SET source_database = EXCLUDED.source_database,
                   slot = EXCLUDED.slot, publication = EXCLUDED.publication, phase = 'copying',
                   consistent_lsn = '0/0', applied_lsn = '0/0', structure = NULL, tables = NULL,
                   source_stats = NULL, transactions = 0, changes = 0, started_at = now(), copied_at = NULL,
                   applied_at = NULL"""
            ),
            (move.target_schema, move.source_database, move.slot, move.publication),
            what="live copy started",
        )


def slot_made(session: Session, target: str, lsn: str) -> None:
    with transaction(session.conn):
        session.execute(
            compose("UPDATE {schema}.{online} SET consistent_lsn = %s, applied_lsn = %s WHERE target_schema = %s"),
            (lsn, lsn, target),
            what="slot made",
        )


def copied(session: Session, move: LiveMove) -> None:
    """The copy of the snapshot is verified and in the staging schema: from now on a re-run applies."""
    with transaction(session.conn):
        session.execute(
            compose(
                """UPDATE {schema}.{online} SET phase = 'live', structure = %s, tables = %s, source_stats = %s,
                   copied_at = now() WHERE target_schema = %s"""
            ),
            (move.structure, json.dumps(move.tables), json.dumps(move.source_stats), move.target_schema),
            what="live copy made",
        )
    move.phase = LIVE


def applied_statement(target: str, end_lsn: str, changes: int) -> sql.Composable:
    """The journal's ``applied_lsn`` of the move into ``target``, in the transaction of the changes it covers."""
    return sql.SQL(
        "UPDATE {}.{} SET applied_lsn = {}, transactions = transactions + 1, changes = changes + {}, "
        "applied_at = now() WHERE target_schema = {}"
    ).format(
        sql.Identifier(JOURNAL_SCHEMA),
        sql.Identifier(ONLINE_TABLE),
        sql.Literal(end_lsn),
        sql.Literal(changes),
        sql.Literal(target),
    )


def remove_row(session: Session, target: str) -> None:
    with transaction(session.conn):
        session.execute(compose("DELETE FROM {schema}.{rows} WHERE target_schema = %s"), (target,))
        session.execute(compose("DELETE FROM {schema}.{online} WHERE target_schema = %s"), (target,))


# ------------------------------------------------------------------------------------------ the source's side
def connect_source(job, role: str):
    """An ordinary connection to the source database named as the run's (``job.application``): the drop of the
    source waits for the run's own sessions to end, and knows them by that name."""
    return connect(job.params, job.request.source_database, application_name=f"{job.application} {role}"[:63])


def open_replication(job, role: str):
    """A logical replication connection to the source database (``CREATE_REPLICATION_SLOT``, the stream), its
    values sent in the text forms that read back as they were (``pgoutput.SESSION_OPTIONS``)."""
    options = " ".join(filter(None, (job.params.extra.get("options"), SESSION_OPTIONS)))
    return connect(
        job.params,
        job.request.source_database,
        factory=extras.LogicalReplicationConnection,
        options=options,
        application_name=f"{job.application} {role}"[:63],
    )


def create_slot(job, name: str, tables: list[str]) -> tuple:
    """The publication of the source's tables, then the slot (the publication must be older than the slot: the
    slot reads it as of each change). Returns the replication connection, which holds the exported snapshot while
    it runs nothing else, the slot's consistent point and the snapshot's name."""
    req = job.request
    source = connect_source(job, "publication")
    try:
        session = Session(source, job.queries)
        session.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
        session.execute(publication_statement(name, req.source_schema, tables), what="publication")
    finally:
        source.close()
    conn = open_replication(job, "slot")
    cur = conn.cursor()
    statement = f"CREATE_REPLICATION_SLOT {name} LOGICAL {PLUGIN} EXPORT_SNAPSHOT"
    job.queries.append(statement)
    cur.execute(statement)
    _slot, lsn, snapshot_name, _plugin = cur.fetchone()
    return conn, lsn, snapshot_name


def publication_statement(name: str, schema: str, tables: list[str]) -> sql.Composable:
    if not tables:
        return sql.SQL("CREATE PUBLICATION {}").format(sql.Identifier(name))
    return sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
        sql.Identifier(name), sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables)
    )


def rehearse(job, session: Session, name: str, tables: list[str]) -> None:
    """Check mode: the statements of the live phase on the source (the session renders them)."""
    job.queries.append(session.render(publication_statement(name, job.request.source_schema, tables)))
    job.queries.append(f"CREATE_REPLICATION_SLOT {name} LOGICAL {PLUGIN} EXPORT_SNAPSHOT")


def slot_exists(session: Session, name: str) -> bool:
    return bool(session.fetch_value("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (name,)))


def source_position(job) -> int:
    """The source server's WAL position now (what a catch-up must reach)."""
    conn = connect_source(job, "position")
    try:
        return lsn_to_int(Session(conn, []).fetch_value("SELECT pg_current_wal_lsn()::text"))
    finally:
        conn.close()


def start_statement(name: str) -> str:
    return f"START_REPLICATION SLOT {name} LOGICAL 0/0 (proto_version '1', publication_names '{name}')"


def drop_source_side(job, name: str) -> bool:
    """Drop the slot (server-wide) and the publication (in the source database) named ``name``; True when
    either existed. A slot still held by a killed run's stream is let go first (its session is ended). The
    source may be frozen (read-only by default): this session writes all the same."""
    dropped = False
    conn = connect_source(job, "drop")
    try:
        conn.cursor().execute("SET default_transaction_read_only TO off")
        session = Session(conn, job.queries, dry_run=job.check_mode)
        dropped = drop_slot(session, name) or dropped
        if session.fetch_value("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)):
            online_checks.drop_publication(session, name)
            dropped = True
    finally:
        conn.close()
    return dropped


def drop_slot(session: Session, name: str) -> bool:
    """Drop the slot ``name`` once no stream holds it; False when there is none."""
    deadline = time.monotonic() + SLOT_RELEASE_SECONDS
    while True:
        row = session.fetch_one("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (name,))
        if row is None:
            return False
        if row[0] is None or session.dry_run:
            break
        if time.monotonic() > deadline:
            # The stream of a run that is gone (its server process has not noticed yet): end it.
            session.fetch_value("SELECT pg_terminate_backend(%s)", (row[0],))
        time.sleep(0.2)
    online_checks.drop_slot(session, name)
    return True


def finish(job, session: Session, name: str) -> bool:
    """After the publish (or on finding the copy published): slot, publication and journal row gone; True when
    there was something to drop."""
    dropped = drop_source_side(job, name)
    if read(session, job.request.target) is not None:
        if not session.dry_run:
            remove_row(session, job.request.target)
        dropped = True
    return dropped


def forget(job, session: Session, name: str) -> None:
    """After a failure or before starting again: slot, publication and the journal row gone. A failure to drop
    them is said in the log, not hidden, and the row is kept for the next run or rollback to find them."""
    try:
        drop_source_side(job, name)
    except Exception as exc:  # the failure being handled is the one to report
        # The journal row stays: it is how the next run and rollback.yml (unified.live_moves) find the slot.
        job.log(f"could not drop slot and publication {name} (the next run or rollback.yml does): {exc}")
        return
    with contextlib.suppress(psycopg2.Error):
        session.conn.rollback()
        remove_row(session, job.request.target)
