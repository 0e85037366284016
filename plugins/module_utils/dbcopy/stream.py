# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rows from one connection to another with COPY, through a bounded OS pipe.

``COPY ... TO STDOUT`` on the source writes into the pipe from a thread while
``COPY ... FROM STDIN`` on the target reads from it: at most the pipe and two
small buffers are in memory, whatever the size of the table. Both COPY calls
release the GIL while they wait on the network or the pipe.

A failure on either side stops the other (closing the pipe ends of the
failed side) and is raised; the caller must then roll back the target
transaction, which may have received a truncated stream.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

from .._pg import psycopg2, sql
from .catalog import Table

BUFFER_BYTES = 1 << 20

# Settings every connection of a copy uses, so that the text of a value (checksums) is the same on both sides.
SESSION_SETTINGS = (
    "SET TimeZone TO 'UTC'",
    "SET DateStyle TO 'ISO, YMD'",
    "SET IntervalStyle TO 'postgres'",
    "SET extra_float_digits TO 3",
    "SET bytea_output TO 'hex'",
    "SET statement_timeout TO 0",
    "SET idle_in_transaction_session_timeout TO 0",
)


class StreamError(Exception):
    """One side of a COPY stream failed; ``side`` is ``source`` or ``target``."""

    def __init__(self, side: str, cause: BaseException):
        super().__init__(f"{side}: {str(cause).strip()}")
        self.side = side
        self.cause = cause


@dataclass
class StreamResult:
    rows_out: int
    rows_in: int
    bytes: int


class _CountingReader:
    def __init__(self, raw):
        self.raw = raw
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.bytes += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self.raw.readline(size)
        self.bytes += len(data)
        return data


def prepare_session(conn, application_name: str) -> None:
    """Apply the common settings on an autocommit connection."""
    previous = conn.autocommit
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in SESSION_SETTINGS:
            cur.execute(statement)
        cur.execute("SELECT set_config('application_name', %s, false)", (application_name[:63],))
    conn.autocommit = previous


def copy_statements(table: Table, source_schema: str, staging: str) -> tuple[sql.Composable, sql.Composable]:
    """``COPY TO`` for the source and ``COPY FROM`` for the (freshly truncated) staging table."""
    columns = table.copy_columns
    column_list = (
        sql.SQL(" ({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns)) if columns else sql.SQL("")
    )
    fmt = "binary" if table.binary_safe else "text"
    source = sql.SQL("COPY {}{} TO STDOUT WITH (FORMAT {})").format(
        sql.Identifier(source_schema, table.name), column_list, sql.SQL(fmt)
    )
    target = sql.SQL("COPY {}{} FROM STDIN WITH (FORMAT {}, FREEZE)").format(
        sql.Identifier(staging, table.name), column_list, sql.SQL(fmt)
    )
    return source, target


def stream(source_conn, target_conn, source_copy, target_copy) -> StreamResult:
    """Pipe one COPY into the other; the target transaction is left open for the caller to commit."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb", buffering=BUFFER_BYTES)
    writer = os.fdopen(write_fd, "wb", buffering=BUFFER_BYTES)
    outcome: dict = {}

    def produce() -> None:
        try:
            with source_conn.cursor() as cur:
                cur.copy_expert(source_copy, writer, size=BUFFER_BYTES)
                outcome["rows_out"] = cur.rowcount
            writer.flush()
        except BaseException as exc:
            outcome["source"] = exc
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    producer = threading.Thread(target=produce, name="copy-source", daemon=True)
    producer.start()
    counting = _CountingReader(reader)
    try:
        with target_conn.cursor() as cur:
            cur.copy_expert(target_copy, counting, size=BUFFER_BYTES)
            rows_in = cur.rowcount
    except psycopg2.Error as exc:
        outcome["target"] = exc
        rows_in = -1
    finally:
        reader.close()  # a producer blocked on a full pipe gets EPIPE and stops
        producer.join()
    if "source" in outcome:
        raise StreamError("source", outcome["source"])
    if "target" in outcome:
        raise StreamError("target", outcome["target"])
    return StreamResult(outcome.get("rows_out", -1), rows_in, counting.bytes)
