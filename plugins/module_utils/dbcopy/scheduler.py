# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data phase: ``jobs`` workers take tasks from one queue, biggest tables first.

A table is copied whole, or (when the snapshot cut it in page ranges) in pieces by several workers at once;
a split table's pieces are read back in parallel before its indexes. Whoever completes a table's last piece
finishes it: indexes and constraints, then the verification of that table.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from dataclasses import dataclass

from .._pg import psycopg2, sql
from ..connection import connect
from ..errors import LamassuError, OperationFailed
from ..session import Session
from . import ddl, verify
from .catalog_model import Table
from .request import CopyJob, TableOutcome
from .snapshot import Snapshot
from .stream import RowHashes, StreamError, copy_in, copy_out, ctid_range, page_ranges, prepare_session, stream

# Values that TOAST tries to compress: lz4 (PG 14+, when the server has it) gives up on incompressible data
# (certificates) in a fraction of the time pglz takes; values read back are the same either way.
TOAST_LZ4 = """SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings
WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)"""


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


def start_load(session: Session, table: Table, staging: str, split: bool) -> sql.Composable:
    """Open the load of a table or of one of its pieces; returns the ``COPY … FROM STDIN`` to stream into."""
    if not split:
        # FREEZE needs the table truncated (or created) in the loading transaction.
        session.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(staging, table.name)), what=table.name)
    target_copy = copy_in(table, staging, freeze=not split)
    session.queries.append(session.render(target_copy))
    return target_copy


class Scheduler:
    """Copies every table of ``source`` into the staging schema with ``jobs`` workers; ``run`` returns the outcomes."""

    def __init__(self, job: CopyJob, source: Snapshot, search_path: sql.Composable):
        self.job = job
        self.source = source
        self.search_path = search_path
        self.work = _WorkQueue()
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> list[TableOutcome]:
        """Every table by ``jobs`` workers; a split table's pieces first, then its read-back, then its indexes."""
        catalog = self.source.catalog
        runs: dict[str, _TableRun] = {}
        for table in sorted(catalog.tables, key=lambda t: (-t.bytes, t.name)):
            ranges = self.source.pieces.get(table.name)
            runs[table.name] = run = _TableRun(table, len(ranges) if ranges else 1, bool(ranges))
            run.hashed_records = table.name in self.source.hashed
            for where in [ctid_range(first, end) for first, end in ranges] if ranges else [None]:
                self.work.put((1, -table.bytes), _Task("copy", run, where))
        workers = [
            threading.Thread(target=self._worker, args=(number,), name=f"copy-worker-{number}", daemon=True)
            for number in range(min(self.job.request.jobs, max(self.work.size(), 1)))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if self.failures:
            raise OperationFailed(f"{self.job.who()} failed: " + "; ".join(self.failures), self.job.partial())
        return [runs[t.name].outcome for t in catalog.tables]

    def _worker(self, number: int) -> None:
        job = self.job
        source = target = None
        current = None
        try:
            source = job.open_source(f"worker {number}")
            with source.cursor() as cur:
                cur.execute("SET TRANSACTION SNAPSHOT %s", (self.source.snapshot,))
            target = connect(job.params, job.request.target_database, autocommit=False)
            prepare_session(target, f"{job.application} worker {number}")
            with target.cursor() as cur:
                cur.execute(self.search_path)
                cur.execute("SET synchronous_commit TO off")
                cur.execute(TOAST_LZ4)
            target.commit()
            while True:
                task = self.work.get(self.stop)
                if task is None:
                    break
                current = task.run.table
                try:
                    self._run_task(source, target, task)
                finally:
                    self.work.done()
                current = None
        except StreamError as exc:
            self.stop.set()
            self.failures.append(
                f"Copying table {current.name if current else '?'} failed on the {exc.side} side: {exc}"
            )
        except (LamassuError, psycopg2.Error) as exc:
            self.stop.set()
            where = f"table {current.name}" if current else "a copy worker"
            self.failures.append(f"Copying {where} failed: {str(exc).strip()}")
        except BaseException as exc:
            self.stop.set()
            self.failures.append(f"Copy worker {number} failed unexpectedly: {exc!r}")
        finally:
            for conn in (source, target):
                if conn is not None:
                    with contextlib.suppress(psycopg2.Error):
                        conn.close()

    def _run_task(self, source, target, task: _Task) -> None:
        run = task.run
        if task.kind == "copy":
            self._copy_piece(source, target, task)
            if not run.piece_done():
                return
            if not run.split:
                self._finish(target, run)
                return
            self.job.hooks.pause("verify")
            if self.job.request.verify == "checksum":
                # Measure the loaded pieces in parallel before the indexes (ADD PRIMARY KEY would block the reads).
                ranges = page_ranges(self._pages(target, run.table), run.pieces)
                run.left = len(ranges)
                for first, end in ranges:
                    self.work.put((0, -run.table.bytes), _Task("check", run, ctid_range(first, end)))
            else:
                self.work.put((0, -run.table.bytes), _Task("finish", run))
        elif task.kind == "check":
            rows, total = self._measure_target(target, run, task.where)
            with run.lock:
                run.target.add(rows, total)
            if run.piece_done():
                self.work.put((0, -run.table.bytes), _Task("finish", run))
        else:
            self._finish(target, run)

    def _copy_piece(self, source, target, task: _Task) -> None:
        run = task.run
        table = run.table
        if run.start():
            self.job.log(
                f"table {table.name}: started ({table.bytes / 1e6:.1f} MB"
                + (f", {run.pieces} pieces)" if run.split else ")")
            )
        target_copy = start_load(Session(target, self.job.queries), table, self.job.staging, run.split)
        hashes = row_hash = None
        if self.job.request.verify == "checksum":
            # The source side of the checksum comes with the rows: one read of the source.
            hashes = RowHashes(table.binary_safe)
            row_hash = verify.row_hash(table, run.hashed_records)
        source_copy = copy_out(table, self.source.catalog.schema, task.where, row_hash)
        pause = self.job.hooks.pause
        result = stream(source, target, source_copy, target_copy, hashes, midway=lambda: pause("copy"))
        target.commit()
        with run.lock:
            run.rows_out += result.rows_out
            run.rows_in += result.rows_in
            if hashes is not None:
                run.source.add(hashes.rows, hashes.total)

    def _measure_target(self, target, run: _TableRun, where) -> tuple[int, int]:
        with target.cursor() as cur:
            measured = verify.measure(
                cur, verify.checksum_query(self.job.staging, run.table, run.hashed_records, where)
            )
        target.commit()
        return measured

    def _pages(self, target, table: Table) -> int:
        with target.cursor() as cur:
            cur.execute(
                "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int",
                (sql.Identifier(self.job.staging, table.name).as_string(target),),
            )
            pages = cur.fetchone()[0]
        target.commit()
        return pages

    def _finish(self, target, run: _TableRun) -> None:
        """Indexes and constraints of a loaded table, then its verification; sets ``run.outcome``."""
        table = run.table
        staging = self.job.staging
        pause = self.job.hooks.pause
        session = Session(target, self.job.queries)
        for statement in ddl.table_post_data(table, staging):
            session.execute(statement, what=f"indexes of table {table.name}")
            pause("index")
        target.commit()
        mode = self.job.request.verify
        source_check = target_check = None
        if mode == "count":
            if not run.split:
                pause("verify")
            with target.cursor() as cur:
                cur.execute(verify.count_query(staging, table.name))
                target_check = verify.TableCheck(cur.fetchone()[0])
            target.commit()
            source_check = verify.TableCheck(run.rows_out)
        elif mode == "checksum":
            if not run.split:
                pause("verify")
                run.target.add(*self._measure_target(target, run, None))
            source_check, target_check = run.source.check(), run.target.check()
        run.outcome = outcome = TableOutcome(
            name=table.name,
            rows=target_check.rows if target_check else run.rows_in,
            bytes=table.bytes,
            seconds=round(time.monotonic() - run.began, 3),
            verified=mode != "none",
            checksum=source_check.checksum if source_check else None,
            problem=verify.mismatch(table.name, source_check, target_check),
        )
        self.job.log(
            f"table {table.name}: {outcome.rows} rows in {outcome.seconds} s, "
            + (outcome.problem or ("verified" if outcome.verified else "not verified"))
        )
        self.job.progress.table_done(table.bytes)
