"""The run id: the start time of the ansible-playbook process, from /proc or ps, the same however often it is read."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.lamassuiot.postgres.plugins.plugin_utils.run_id import (
    boot_time,
    process_started,
    run_id,
    start_ticks,
    started_from_proc,
    started_from_ps,
)

UTC = datetime.UTC
BTIME = 1795990400  # 2026-11-29 22:13:20 UTC
PROC_STAT = f"cpu  10 0 20 300 0 0 0 0 0 0\ncpu0 10 0 20 300 0 0 0 0 0 0\nintr 1 2 3\nctxt 99\nbtime {BTIME}\n"


def stat_line(command: str, ticks: int) -> str:
    """A /proc/<pid>/stat line whose field 22 (start time) is ``ticks``."""
    after_command = ["S", "1", "4242", "4242", "0", "-1", "4194560"] + ["0"] * 12 + [str(ticks), "123456", "789"]
    return f"4243 ({command}) {' '.join(after_command)}\n"


@pytest.mark.parametrize(
    ("command", "ticks", "clock_ticks", "started"),
    [
        ("ansible-playbook", 0, 100, datetime.datetime(2026, 11, 29, 22, 13, 20, tzinfo=UTC)),
        ("ansible-playbook", 360_050, 100, datetime.datetime(2026, 11, 29, 23, 13, 20, 500_000, tzinfo=UTC)),
        # The command name may hold spaces and parentheses: the fields are counted from its last ")".
        ("a (b) c) d", 123_400, 100, datetime.datetime(2026, 11, 29, 22, 33, 54, tzinfo=UTC)),
        ("ansible-playbook", 1_234_000, 1000, datetime.datetime(2026, 11, 29, 22, 33, 54, tzinfo=UTC)),
    ],
)
def test_the_start_time_is_boot_time_plus_the_ticks_of_field_22(command, ticks, clock_ticks, started):
    stat = stat_line(command, ticks)
    assert start_ticks(stat) == ticks
    assert boot_time(PROC_STAT) == BTIME
    assert started_from_proc(stat, PROC_STAT, clock_ticks) == started


def test_a_proc_stat_without_btime_is_an_error():
    with pytest.raises(ValueError, match="btime"):
        boot_time("cpu  1 2 3\nctxt 4\n")


def test_process_started_reads_a_proc_tree(tmp_path):
    (tmp_path / "4243").mkdir()
    (tmp_path / "4243" / "stat").write_text(stat_line("ansible-playbook", 360_000 * os.sysconf("SC_CLK_TCK") // 100))
    (tmp_path / "stat").write_text(PROC_STAT)
    assert process_started(4243, str(tmp_path)) == datetime.datetime(2026, 11, 29, 23, 13, 20, tzinfo=UTC)
    assert run_id(4243, str(tmp_path)) == "20261129T231320Z"


@pytest.fixture
def local_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Madrid")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("lstart", "started"),
    [
        # ps writes local time (Madrid: UTC+1 in winter, UTC+2 in summer), days padded with a space.
        ("Sun Dec  6 09:05:01 2026", datetime.datetime(2026, 12, 6, 8, 5, 1, tzinfo=UTC)),
        ("Wed Jul 15 23:59:59 2026\n", datetime.datetime(2026, 7, 15, 21, 59, 59, tzinfo=UTC)),
    ],
)
def test_ps_lstart_is_local_time(local_time_zone, lstart, started):
    assert started_from_ps(lstart) == started


@pytest.mark.skipif(not os.path.exists("/proc/self/stat") or not shutil.which("ps"), reason="needs /proc and ps")
def test_proc_and_ps_agree_on_this_process_and_the_id_does_not_move():
    from_proc = process_started(os.getpid())
    lstart = subprocess.run(
        ["ps", "-o", "lstart=", "-p", str(os.getpid())],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout
    assert abs((from_proc - started_from_ps(lstart)).total_seconds()) < 1.5
    assert from_proc <= datetime.datetime.now(UTC)
    first = run_id(os.getpid())
    time.sleep(1.1)
    assert run_id(os.getpid()) == first


def test_a_process_that_cannot_be_read_gets_the_current_time(tmp_path):
    before = datetime.datetime.now(UTC).replace(microsecond=0)
    # No such process in the empty tree, nor (pid beyond pid_max) for ps.
    named = datetime.datetime.strptime(run_id(2**31 - 1, str(tmp_path)), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= named <= datetime.datetime.now(UTC)
