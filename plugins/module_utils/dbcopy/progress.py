# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The progress file of a copy: a small JSON document rewritten atomically as the copy goes.

``{"tables_done": n, "tables_total": m, "bytes_done": b, "bytes_total": B, "phase": "...", "elapsed_s": s}``, and
while the online move applies, ``lag_bytes`` and ``lag_s`` (how far behind the source the copy is).

It is written at the start of the run, when the tables to copy are known, at every phase (``phases.PHASES``), after each
table, and at the end (``phase`` ``done`` or ``failed``). Each write goes to a temporary file in the same directory,
then ``os.replace`` puts it in place: a reader sees the previous document or the next one, never half of one.
The action ``lamassuiot.postgres.postgres_db_to_schema_wait`` reads it while the copy runs as an asynchronous
job and prints a progress line from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time

from ..errors import InvalidInput
from .phases import DONE, FAILED, PLAN

PROGRESS_KEYS = ("tables_done", "tables_total", "bytes_done", "bytes_total", "phase", "elapsed_s")


class NoProgress:
    """No progress file: every call does nothing."""

    def begin(self) -> None:
        pass

    def plan(self, tables_total: int, bytes_total: int) -> None:
        pass

    def phase(self, phase: str) -> None:
        pass

    def table_done(self, table_bytes: int) -> None:
        pass

    def lag(self, lag_bytes: int, lag_s: float) -> None:
        pass

    def finish(self, tables: list[dict] | None, failed: bool = False) -> None:
        pass


class ProgressFile(NoProgress):
    """Writes the progress of one run to ``path``; safe to call from the copy workers."""

    def __init__(self, path: str, clock=time.monotonic):
        self.path = os.path.abspath(os.path.expanduser(path))
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._broken = False
        self.state = {"tables_done": 0, "tables_total": 0, "bytes_done": 0, "bytes_total": 0, "phase": PLAN}

    def begin(self) -> None:
        """The first write (a missing directory is made, mode 0700); an unwritable path fails the run here, before
        anything changed."""
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            self._write(self.snapshot())
        except OSError as exc:
            raise InvalidInput(f"Cannot write the progress file {self.path!r}: {exc.strerror or exc}") from None

    def plan(self, tables_total: int, bytes_total: int) -> None:
        with self._lock:
            self.state.update(tables_total=tables_total, bytes_total=bytes_total)
            self._save()

    def phase(self, phase: str) -> None:
        with self._lock:
            if self.state["phase"] != phase:
                self.state["phase"] = phase
                self._save()

    def table_done(self, table_bytes: int) -> None:
        with self._lock:
            self.state["tables_done"] += 1
            self.state["bytes_done"] += table_bytes
            self._save()

    def lag(self, lag_bytes: int, lag_s: float) -> None:
        """The online move's apply: how far behind the source it is (WAL bytes, age of the last change applied)."""
        with self._lock:
            self.state.update(lag_bytes=lag_bytes, lag_s=round(lag_s, 1))
            self._save()

    def finish(self, tables: list[dict] | None, failed: bool = False) -> None:
        """The last write: ``done`` with the totals of the result's tables, or ``failed``."""
        with self._lock:
            if failed:
                self.state["phase"] = FAILED
            else:
                total = sum(t.get("bytes") or 0 for t in tables or [])
                self.state.update(
                    tables_done=len(tables or []),
                    tables_total=len(tables or []),
                    bytes_done=total,
                    bytes_total=total,
                    phase=DONE,
                )
            self._save()

    def snapshot(self) -> dict:
        return {**self.state, "elapsed_s": round(self._clock() - self._started, 1)}

    def _save(self) -> None:
        """Best effort once the run is under way: a full disk must not fail a copy hours in."""
        if self._broken:
            return
        try:
            self._write(self.snapshot())
        except OSError:
            self._broken = True

    def _write(self, document: dict) -> None:
        directory, name = os.path.split(self.path)
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(document, stream)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def progress_for(path: str | None, check_mode: bool) -> NoProgress:
    """The progress of a run: a file when a path is given, outside check mode (which writes nothing)."""
    return ProgressFile(path) if path and not check_mode else NoProgress()


def read_progress(text: str) -> dict | None:
    """A progress document read back; ``None`` when it is not one (not written yet, or unreadable)."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or not all(key in document for key in PROGRESS_KEYS):
        return None
    return document


def progress_line(host: str, label: str, document: dict | None, waited_s: float) -> str:
    """One line of the watcher: ``db1: ca: 12/40 tables, 512.3/2048.0 MB, 45 s (data)``.

    The seconds are those of the copy when it last wrote its file, or those of the watcher (``waited_s``, which
    started with the copies) when more: a long table writes nothing until it is done.
    """
    if document is None:
        return f"{host}: {label}: starting, {waited_s:.0f} s"
    seconds = max(float(document["elapsed_s"]), waited_s)
    return (
        f"{host}: {label}: {document['tables_done']}/{document['tables_total']} tables, "
        f"{document['bytes_done'] / 1e6:.1f}/{document['bytes_total'] / 1e6:.1f} MB, "
        f"{seconds:.0f} s ({document['phase']}){lag_text(document)}"
    )


def lag_text(document: dict) -> str:
    """``, 1.2 MB / 0.4 s behind the source`` while the online move applies (``lag`` writes it)."""
    if document.get("lag_bytes") is None:
        return ""
    return f", {document['lag_bytes'] / 1e6:.1f} MB / {document['lag_s']:.1f} s behind the source"
