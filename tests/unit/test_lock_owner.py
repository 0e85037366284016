"""The upgrade lock's pure parts: the holder's name, how a refusal names the run, the controller watch."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.connection import ConnectionParams
from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.upgrade_lock import (
    APPLICATION_NAME_BYTES,
    Holder,
    Owner,
    ProcessWatch,
    refusal,
    run_started,
    take,
)


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (Owner("20261202T073303Z", "ci-7", 4242), "lamassu-lock 20261202T073303Z 4242@ci-7"),
        (Owner("r1", "h" * 80, 1), ("lamassu-lock r1 1@" + "h" * 80)[:APPLICATION_NAME_BYTES]),
    ],
)
def test_application_name_names_the_run_and_fits_the_server_limit(owner, name):
    assert owner.application_name == name
    assert len(owner.application_name.encode()) <= APPLICATION_NAME_BYTES
    parsed = Owner.parse(owner.application_name)
    assert parsed is not None and parsed.application_name == owner.application_name


@pytest.mark.parametrize("name", ["", "lamassuiot.postgres", "lamassu-lock r1", "lamassu-lock r1 x@h", "psql"])
def test_other_sessions_are_no_run(name):
    assert Owner.parse(name) is None


@pytest.mark.parametrize(
    "owner",
    [Owner("", "h", 1), Owner("two words", "h", 1), Owner("r", "", 1), Owner("r", "a b", 1), Owner("r", "h", 0)],
)
def test_an_owner_that_cannot_be_named_is_refused(owner):
    with pytest.raises(InvalidInput):
        owner.validate()


@pytest.mark.parametrize(
    ("run_id", "started"),
    [("20261202T073303Z", "2026-12-02 07:33:03 UTC"), ("adhoc", "adhoc")],
)
def test_a_run_id_stands_for_its_start_time(run_id, started):
    assert run_started(run_id) == started


def test_the_refusal_names_start_time_controller_host_and_pid():
    holder = Holder(77, "lamassu-lock 20261202T073303Z 4242@ci-7", "10.0.0.5", "2026-12-02T07:33:05Z")
    message = refusal(holder, "db1:5432")
    for fragment in (
        "db1:5432",
        "run 20261202T073303Z",
        "2026-12-02 07:33:03 UTC",
        "controller ci-7",
        "process 4242",
        "server process 77",
        "nothing was changed",
        "pg_terminate_backend(77)",
    ):
        assert fragment in message
    assert holder.as_dict()["controller_pid"] == 4242


@pytest.mark.parametrize(
    ("holder", "fragment"),
    [
        (Holder(9, "psql", "local", "2026-12-02T07:00:00Z"), "not a Lamassu run"),
        (Holder(0, "", "unknown", "unknown"), "is ending"),
    ],
)
def test_other_holders_are_described_as_what_they_are(holder, fragment):
    assert fragment in holder.describe()
    assert holder.as_dict()["run_id"] is None


def test_the_watch_ends_with_the_process_even_before_it_is_collected():
    child = subprocess.Popen(["sleep", "30"])
    watch = ProcessWatch(child.pid)
    assert watch.alive()
    child.kill()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # ended, still a zombie
    assert not watch.alive()
    child.wait()
    assert not watch.alive()


def test_a_holder_never_watches_a_process_it_cannot_see():
    child = subprocess.Popen(["true"])
    child.wait()
    owner = Owner("r1", "ctl", child.pid)
    with pytest.raises(InvalidInput, match="not running where the module runs"):
        take(ConnectionParams(), owner, 60, child.pid, check_mode=False)  # refused before any connection
