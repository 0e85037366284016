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
import fcntl
import os
import sys
import threading
from dataclasses import dataclass

from .._pg import psycopg2, sql
from .catalog_model import Table

BUFFER_BYTES = 1 << 20
BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
BINARY_HEADER = len(BINARY_SIGNATURE) + 8  # signature, flags (int32), header extension length (int32)
PIPE_BYTES = 1 << 20  # the kernel's default pipe holds 64 kB; a larger one means fewer wake-ups

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


class RowHashes:
    """Between the source COPY and the pipe: takes each row's hash (its last column, a ``bigint``) off the
    row, adds it up, and passes the row on exactly as ``COPY`` would have printed it without that column.

    The server sends every row in a message of its own (a guarantee of the protocol), and psycopg2 writes
    each message with one call, so ``write`` sees whole rows: in binary format a field count, then per
    field its length and bytes (the hash: length 8, then 8 bytes), the first row preceded by the file
    header, the last message the trailer; in text format one line, fields separated by tabs.
    """

    def __init__(self, binary: bool):
        self.binary = binary
        self.rows = 0
        self.total = 0
        self.sink = None
        self._header = binary

    def write(self, data) -> int:
        row = memoryview(data)
        sink = self.sink
        if self.binary:
            if self._header:
                self._header = False
                if bytes(row[: len(BINARY_SIGNATURE)]) == BINARY_SIGNATURE:
                    size = BINARY_HEADER + int.from_bytes(row[BINARY_HEADER - 4 : BINARY_HEADER], "big")
                    sink.write(row[:size])
                    row = row[size:]
            fields = int.from_bytes(row[:2], "big", signed=True)
            if fields < 0:  # the trailer
                sink.write(row)
                return len(data)
            if fields < 1 or int.from_bytes(row[-12:-8], "big") != 8:
                raise ValueError("a row of the source COPY does not end with its hash")
            self.total += int.from_bytes(row[-8:], "big", signed=True)
            sink.write((fields - 1).to_bytes(2, "big"))
            sink.write(row[2:-12])
        else:
            # "...<tab><hash><newline>": a tab in a value is printed as an escape, so the last tab is ours.
            tail_start = max(len(row) - 24, 0)
            tail = bytes(row[tail_start:])
            tab = tail.rfind(b"\t")
            self.total += int(tail[tab + 1 : -1])
            if tab >= 0:
                sink.write(row[: tail_start + tab])
            sink.write(b"\n")
        self.rows += 1
        return len(data)


@dataclass
class StreamResult:
    rows_out: int
    rows_in: int


class _CountingReader:
    """The target's side of the pipe; ``midway`` is called once, when the first buffer has gone to the server."""

    def __init__(self, raw, midway=None):
        self.raw = raw
        self.bytes = 0
        self.midway = midway

    def read(self, size: int = -1) -> bytes:
        if self.midway is not None and self.bytes:
            midway, self.midway = self.midway, None
            midway()
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


def column_list(table: Table) -> sql.Composable:
    columns = table.copy_columns
    return sql.SQL(" ({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns)) if columns else sql.SQL("")


def copy_format(table: Table) -> str:
    return "binary" if table.binary_safe else "text"


def copy_out(
    table: Table, schema: str, where: sql.Composable | None = None, row_hash: sql.Composable | None = None
) -> sql.Composable:
    """``COPY TO STDOUT`` of the table's copied columns, of the rows ``where`` selects (all without it).

    With ``row_hash`` (an expression over the alias ``r``) each row carries its hash as one more, last
    column, which ``RowHashes`` takes off again before the row reaches the target.
    """
    name = sql.Identifier(schema, table.name)
    fmt = sql.SQL(copy_format(table))
    if where is None and row_hash is None:
        return sql.SQL("COPY {}{} TO STDOUT WITH (FORMAT {})").format(name, column_list(table), fmt)
    select = [sql.Identifier("r", c) for c in table.copy_columns]
    if row_hash is not None:
        select.append(row_hash)
    return sql.SQL("COPY (SELECT {} FROM {} AS r{}) TO STDOUT WITH (FORMAT {})").format(
        sql.SQL(", ").join(select),
        name,
        sql.SQL(" WHERE {}").format(where) if where is not None else sql.SQL(""),
        fmt,
    )


def copy_in(table: Table, staging: str, freeze: bool = True) -> sql.Composable:
    """``COPY FROM STDIN`` into the staging table; ``FREEZE`` needs it created or truncated in this transaction."""
    return sql.SQL("COPY {}{} FROM STDIN WITH (FORMAT {}{})").format(
        sql.Identifier(staging, table.name),
        column_list(table),
        sql.SQL(copy_format(table)),
        sql.SQL(", FREEZE" if freeze else ""),
    )


def ctid_range(first_page: int | None, end_page: int | None) -> sql.Composable:
    """Rows of the pages ``[first_page, end_page)`` (a bound of ``None`` is open): a TID range scan on PG 14+."""
    parts = []
    if first_page is not None:
        parts.append(sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({first_page},0)")))
    if end_page is not None:
        parts.append(sql.SQL("ctid < {}::tid").format(sql.Literal(f"({end_page},0)")))
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")


def page_ranges(pages: int, pieces: int) -> list[tuple[int | None, int | None]]:
    """``pieces`` contiguous page ranges covering the table; the first and last are open-ended."""
    pieces = max(1, min(pieces, pages))
    bounds = [pages * k // pieces for k in range(pieces + 1)]
    return [(None if k == 0 else bounds[k], None if k == pieces - 1 else bounds[k + 1]) for k in range(pieces)]


# fcntl.F_SETPIPE_SZ is Python 3.10; before that the Linux value (1031, linux/fcntl.h) is used.
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031 if sys.platform.startswith("linux") else None)


def _grow_pipe(fd: int) -> None:
    if _F_SETPIPE_SZ is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_BYTES)


def stream(
    source_conn, target_conn, source_copy, target_copy, hashes: RowHashes | None = None, midway=None
) -> StreamResult:
    """Pipe one COPY into the other; the target transaction is left open for the caller to commit.

    With ``hashes`` the source rows carry their hash as a last column, which is taken off and added up.
    ``midway`` (a test hook) is called once in the middle of the stream, with both COPY commands running.
    """
    read_fd, write_fd = os.pipe()
    _grow_pipe(write_fd)
    reader = os.fdopen(read_fd, "rb", buffering=BUFFER_BYTES)
    writer = os.fdopen(write_fd, "wb", buffering=BUFFER_BYTES)
    outcome: dict = {}

    def produce() -> None:
        try:
            with source_conn.cursor() as cur:
                if hashes is not None:
                    hashes.sink = writer
                cur.copy_expert(source_copy, hashes if hashes is not None else writer, size=BUFFER_BYTES)
                outcome["rows_out"] = cur.rowcount
            writer.flush()
        except BaseException as exc:
            outcome["source"] = exc
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    producer = threading.Thread(target=produce, name="copy-source", daemon=True)
    producer.start()
    counting = _CountingReader(reader, midway)
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
    return StreamResult(outcome.get("rows_out", -1), rows_in)
