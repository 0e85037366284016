"""The progress file of a copy: written whole at each step, read back by the watcher, turned into one line."""

from __future__ import annotations

import errno
import json
import os
import threading

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy import progress as progress_module
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.progress import (
    PROGRESS_KEYS,
    NoProgress,
    ProgressFile,
    progress_for,
    progress_line,
    read_progress,
)
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.request import online_line
from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def read(path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def test_a_run_writes_start_plan_phases_tables_and_end(tmp_path):
    clock = Clock()
    path = tmp_path / "sub" / "ca.json"  # a missing directory is made
    progress = ProgressFile(str(path), clock=clock)
    progress.begin()
    assert read(path) == {
        **dict.fromkeys(("tables_done", "tables_total", "bytes_done", "bytes_total"), 0),
        "phase": "plan",
        "elapsed_s": 0.0,
    }
    assert oct(os.stat(path.parent).st_mode & 0o777) == "0o700" and os.stat(path).st_mode & 0o077 == 0
    progress.plan(3, 3_000_000)
    progress.phase("data")
    clock.now += 12.34
    progress.table_done(2_000_000)
    assert read(path) == {
        "tables_done": 1,
        "tables_total": 3,
        "bytes_done": 2_000_000,
        "bytes_total": 3_000_000,
        "phase": "data",
        "elapsed_s": 12.3,
    }
    progress.table_done(500_000)
    progress.finish([{"name": t, "bytes": 1_000_000} for t in ("a", "b", "c")])
    assert {**read(path), "elapsed_s": None} == {
        "tables_done": 3,
        "tables_total": 3,
        "bytes_done": 3_000_000,
        "bytes_total": 3_000_000,
        "phase": "done",
        "elapsed_s": None,
    }
    assert os.listdir(path.parent) == ["ca.json"], "no temporary file is left behind"


def test_a_failed_run_says_so_and_keeps_its_counts(tmp_path):
    progress = ProgressFile(str(tmp_path / "p.json"))
    progress.begin()
    progress.plan(2, 10)
    progress.table_done(4)
    progress.finish(None, failed=True)
    assert {**read(tmp_path / "p.json"), "elapsed_s": 0} == {
        "tables_done": 1,
        "tables_total": 2,
        "bytes_done": 4,
        "bytes_total": 10,
        "phase": "failed",
        "elapsed_s": 0,
    }


def test_an_unwritable_path_fails_at_the_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InvalidInput, match="Cannot write the progress file"):
        ProgressFile(str(blocker / "p.json")).begin()


def test_a_write_that_fails_later_does_not_fail_the_copy(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    progress = ProgressFile(str(path))
    progress.begin()

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(progress_module.os, "replace", disk_full)
    progress.table_done(1)  # a copy hours in is not failed by its progress file
    progress.finish([])
    monkeypatch.undo()
    assert read(path)["phase"] == "plan"
    assert os.listdir(tmp_path) == ["p.json"], "the temporary files of the failed writes are gone"


def test_tables_done_from_many_workers_all_count(tmp_path):
    progress = ProgressFile(str(tmp_path / "p.json"))
    progress.begin()
    progress.plan(200, 200)
    workers = [threading.Thread(target=lambda: [progress.table_done(1) for _n in range(50)]) for _w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert read(tmp_path / "p.json")["tables_done"] == 200


def test_a_reader_always_sees_a_whole_document(tmp_path):
    path = tmp_path / "p.json"
    progress = ProgressFile(str(path))
    progress.begin()
    progress.plan(10_000, 10_000)
    seen = []
    writer = threading.Thread(target=lambda: [progress.table_done(1) for _n in range(2_000)])
    writer.start()
    while writer.is_alive():
        seen.append(read_progress(path.read_text()))
    writer.join()
    assert seen and all(document is not None for document in seen)


def test_check_mode_and_no_path_write_nothing(tmp_path):
    assert not isinstance(progress_for(None, False), ProgressFile)
    assert not isinstance(progress_for(str(tmp_path / "p.json"), True), ProgressFile)
    NoProgress().begin()
    assert isinstance(progress_for(str(tmp_path / "p.json"), False), ProgressFile)
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("text", ["", "{", "[]", '{"tables_done": 1}'])
def test_what_is_not_a_progress_document_reads_as_none(text):
    assert read_progress(text) is None


def test_the_progress_line():
    document = {
        "tables_done": 12,
        "tables_total": 40,
        "bytes_done": 512_300_000,
        "bytes_total": 2_048_000_000,
        "phase": "data",
        "elapsed_s": 45.2,
    }
    assert set(document) == set(PROGRESS_KEYS)
    assert read_progress(json.dumps(document)) == document
    assert progress_line("db1", "ca", document, 3.0) == "db1: ca: 12/40 tables, 512.3/2048.0 MB, 45 s (data)"
    # A long table writes nothing until it is done: the watcher's own seconds when they are more.
    assert progress_line("db1", "ca", document, 61.6) == "db1: ca: 12/40 tables, 512.3/2048.0 MB, 62 s (data)"
    assert progress_line("db1", "ca", None, 2.2) == "db1: ca: starting, 2 s"


def test_the_progress_line_of_the_online_apply_says_how_far_behind_the_source_it_is(tmp_path):
    progress = ProgressFile(str(tmp_path / "p.json"), clock=lambda: 10.0)
    progress.begin()
    progress.phase("apply")
    progress.lag(1_250_000, 0.43)
    document = read_progress((tmp_path / "p.json").read_text())
    assert progress_line("db1", "ca", document, 1.0) == (
        "db1: ca: 0/0 tables, 0.0/0.0 MB, 1 s (apply), 1.2 MB / 0.4 s behind the source"
    )


def test_the_online_line_of_a_copy():
    applied = {"transactions": 12, "changes": 30, "seconds": 0.52, "lag_bytes": 0, "lag_s": 0.0}
    assert online_line("live", applied, None, False) == (
        "online live, 12 source transactions (30 changes) applied in 0.5 s, 0.0 MB / 0.0 s behind, not published yet"
    )
    assert online_line("switch", applied, 7, True).endswith("behind, 7 changed rows compared, published")
