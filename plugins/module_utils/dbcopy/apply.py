# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The online move's apply loop: the slot's changes into the staging schema, in commit order.

One source transaction is one target transaction, which also records the transaction's end LSN (``applied_lsn``
of the journal's online row) and the keys of the rows it touched; the slot is told (``send_feedback``) only after
that commit. The transactions decoded at hand are sent together (``BATCH_TRANSACTIONS``), each still its own. A
transaction whose end is not after ``applied_lsn`` was applied before a kill: it is skipped.

``catch_up(goal)`` returns once every source transaction that ends at or before ``goal`` is applied; the switch
gives the position read after the freeze. Without a goal (the live phase: the services keep writing) it catches
up in rounds, each to the source's WAL position when the round starts, until a round is short. When the stream is idle the loop asks the server where its
decoding is (a keepalive requested with ``reply``): past the goal with no transaction open means done.
"""

from __future__ import annotations

import json
import select
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from ..connection import connect
from ..errors import OperationFailed
from . import change_sql, online, pgoutput
from .stream import prepare_session

IDLE_POLL_SECONDS = 0.2
KEYS_PER_STATEMENT = 1000
# At most this many source transactions are sent to the target in one round trip (each its own transaction).
BATCH_TRANSACTIONS = 200
# The live phase catches up in rounds, each to the source's position when it starts, until one takes less than
# SETTLE_SECONDS, or LIVE_ROUNDS were made, or a round took more than CONVERGING times the one before (writes
# about as fast as the apply: the rest is the switch's).
SETTLE_SECONDS = 1.0
LIVE_ROUNDS = 10
CONVERGING = 0.8
KEYS_INSERT = "INSERT INTO {schema}.{rows} (target_schema, table_name, key) VALUES"


@dataclass
class Applied:
    """What one catch-up did."""

    transactions: int = 0
    changes: int = 0
    skipped: int = 0
    seconds: float = 0.0
    applied_lsn: str = "0/0"
    lag_bytes: int = 0
    lag_s: float = 0.0

    def result(self) -> dict:
        return {
            "transactions": self.transactions,
            "changes": self.changes,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "applied_lsn": self.applied_lsn,
            "lag_bytes": self.lag_bytes,
            "lag_s": round(self.lag_s, 1),
        }


class Applier:
    """Applies the slot of ``move`` to ``job.staging``; ``columns`` maps each copied table to its column names,
    so a relation whose columns changed in the source (a structure change) stops the apply, naming it."""

    def __init__(self, job, move: online.LiveMove, columns: dict[str, list[str]]):
        self.job = job
        self.move = move
        self.columns = columns
        self.applied = pgoutput.lsn_to_int(move.applied_lsn)
        self.renderer = change_sql.Renderer(job.staging)  # one per apply: its templates serve every batch

    def catch_up(self, goal: int | None = None) -> Applied:
        job = self.job
        started = time.monotonic()
        done = Applied(applied_lsn=self.move.applied_lsn)
        stream = online.open_replication(job, "apply")
        target = connect(job.params, job.request.target_database)  # autocommit: each batch has its BEGIN
        try:
            prepare_session(target, f"{job.application} apply")
            settle = goal is None
            goal = online.source_position(job) if settle else goal
            cur = stream.cursor()
            cur.start_replication(
                slot_name=self.move.slot,
                decode=False,
                options={"proto_version": "1", "publication_names": self.move.publication},
            )
            transactions = pgoutput.Transactions()  # one per stream: the server describes each table once
            previous = None
            for _round in range(LIVE_ROUNDS):
                round_started = time.monotonic()
                self._loop(cur, target, goal, done, transactions)
                took = time.monotonic() - round_started
                # The live phase: again to where the source is now while the rounds get shorter, until one is short
                # (what is left for the switch is then what the services write in about SETTLE_SECONDS). Writes
                # faster than the apply make rounds no shorter: the rest is the switch's.
                if not settle or took < SETTLE_SECONDS or (previous is not None and took > previous * CONVERGING):
                    break
                previous = took
                goal = online.source_position(job)
            confirm(cur, self.applied)  # now, before the stream closes: the slot lets go of the WAL applied
            done.lag_bytes = max(0, online.source_position(job) - self.applied)
            if not done.lag_bytes:
                done.lag_s = 0.0
            job.progress.lag(done.lag_bytes, done.lag_s)
        finally:
            target.close()
            stream.close()
        done.seconds = time.monotonic() - started
        done.applied_lsn = pgoutput.int_to_lsn(self.applied)
        self.move.applied_lsn = done.applied_lsn
        return done

    def _loop(self, cur, target, goal: int, done: Applied, transactions: pgoutput.Transactions) -> None:
        asked = 0.0
        pending: list = []  # decoded, not applied yet: sent together once the stream has no more at hand
        while self.applied < goal:
            message = cur.read_message()
            if message is None:
                if pending:
                    self._apply(cur, target, pending, goal, done)
                    pending = []
                    continue
                if not transactions.in_transaction and cur.wal_end and cur.wal_end >= goal:
                    # Decoding is past the goal and no transaction is open: nothing before the goal is left.
                    self.applied = max(self.applied, goal)
                    break
                if time.monotonic() - asked > IDLE_POLL_SECONDS:
                    cur.send_feedback(flush_lsn=self.applied, reply=True)
                    asked = time.monotonic()
                select.select([cur.connection], [], [], IDLE_POLL_SECONDS)
                continue
            tx = transactions.feed(message.payload, message.data_start)
            if tx is None:
                continue
            if tx.commit.end_lsn <= self.applied:
                done.skipped += 1  # applied by a run killed before it told the slot
                cur.send_feedback(flush_lsn=self.applied)
                continue
            pending.append(tx)
            if len(pending) >= BATCH_TRANSACTIONS or tx.commit.end_lsn >= goal:
                self._apply(cur, target, pending, goal, done)
                pending = []

    def _apply(self, stream, target, txs: list, goal: int, done: Applied) -> None:
        """Each source transaction of ``txs`` as one target transaction with its changes, the keys they touched
        and the journal's ``applied_lsn``; all sent in one round trip, the last one's COMMIT in a second. Every
        commit but the last is asynchronous: the last, synchronous, flushes the WAL of all of them, and only then
        is the slot told. The apply keeps up with the services by the round trips and flushes it saves, never by
        merging their transactions."""
        last = len(txs) - 1
        with target.cursor() as cur:
            batch: list = []
            for index, tx in enumerate(txs):
                batch.append(b"BEGIN")
                if index < last:
                    batch.append(b"SET LOCAL synchronous_commit TO off")
                batch.extend(self._statements(cur, tx))
                if index < last:
                    batch.append(b"COMMIT")
            cur.execute(b";\n".join(batch))
            self.job.hooks.pause("apply")
            cur.execute("COMMIT")
        self.applied = txs[-1].commit.end_lsn
        changes = sum(len(tx.changes) for tx in txs)
        self.move.transactions += len(txs)
        self.move.changes += changes
        done.transactions += len(txs)
        done.changes += changes
        # How old the last change applied is: the apply's lag in time (as pg_stat_subscription's).
        committed = pgoutput.pg_timestamp(txs[-1].commit.commit_time)
        done.lag_s = max(0.0, (datetime.now(timezone.utc) - committed).total_seconds())
        stream.send_feedback(flush_lsn=self.applied)
        self.job.progress.lag(max(0, max(goal, stream.wal_end or 0) - self.applied), done.lag_s)

    def _statements(self, cur, tx) -> list[bytes]:
        """The statements of one source transaction: its changes, the keys they touched, its end LSN."""
        job = self.job
        keys: dict[str, set] = {}
        statements = []
        for change in tx.changes:
            relation = change.relations if isinstance(change, pgoutput.Truncate) else change.relation
            self._check(relation)
            statements.append(self.renderer.render(cur, change, relation))
            for name, key in touched(change, relation):
                keys.setdefault(name, set()).add(key)
        rows = [(job.request.target, name, key) for name, table_keys in keys.items() for key in sorted(table_keys)]
        for start in range(0, len(rows), KEYS_PER_STATEMENT):
            values = b", ".join(cur.mogrify("(%s, %s, %s)", row) for row in rows[start:][:KEYS_PER_STATEMENT])
            statements.append(cur.mogrify(online.compose(KEYS_INSERT)) + b" " + values + b" ON CONFLICT DO NOTHING")
        end = pgoutput.int_to_lsn(tx.commit.end_lsn)
        statements.append(cur.mogrify(online.applied_statement(job.request.target, end, len(tx.changes))))
        return statements

    def _check(self, relation) -> None:
        if isinstance(relation, tuple):  # a truncate names several
            for one in relation:
                self._check(one)
            return
        if relation.namespace != self.job.request.source_schema or relation.name not in self.columns:
            raise structure_changed(self.job, f"a change came for table {relation.namespace}.{relation.name}")
        columns = [c.name for c in relation.columns]
        if columns != self.columns[relation.name]:
            raise structure_changed(
                self.job,
                f"the columns of table {relation.name} are now {', '.join(columns)} "
                f"(copied: {', '.join(self.columns[relation.name])})",
            )


def confirm(cur, lsn: int) -> None:
    """Tell the server at once that the slot may let go of what ends at ``lsn`` (psycopg2 2.8.3 and later only
    note it until their status interval unless forced; before, every feedback is sent at once)."""
    try:
        cur.send_feedback(flush_lsn=lsn, force=True)
    except TypeError:
        cur.send_feedback(flush_lsn=lsn)


def touched(change, relation) -> list[tuple[str, str]]:
    """(table, key) of the rows a change touches, the key as JSON of its columns and text values: an update that
    changed its key touches two rows. A truncate touches none by key (the switch counts every table's rows)."""
    if isinstance(change, pgoutput.Truncate):
        return []
    columns = [c.name for c in relation.key_columns]
    keys = [change_sql.key_values(change, relation)]
    if isinstance(change, pgoutput.Update) and change.old is not None:
        keys.append(change_sql.key_values(pgoutput.Delete(change.relation_oid, change.old, relation), relation))
    return [(relation.name, json.dumps([columns, list(key)])) for key in keys]


def structure_changed(job, why: str) -> OperationFailed:
    return OperationFailed(
        f"The structure of source database {job.request.source_database!r} changed during the live copy ({why}): "
        "nothing was published. Copy it again (a new run of the live phase starts over), or move it offline"
    )
