"""The upgrade lock's pure parts: the holder's name and lease, how a refusal names the run and its ways out,
when a holder is taken over, which renewal a holder heeds, the controller watch."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.connection import ConnectionParams
from ansible_collections.lamassuiot.postgres.plugins.module_utils.detached import ProcessWatch
from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.upgrade_lock import (
    APPLICATION_NAME_BYTES,
    TAKEOVER_GRACE_SECONDS,
    Holder,
    LockRequest,
    Owner,
    judge,
    lease_until,
    refusal,
    requested_lease,
    run_started,
    take,
)

LEASE_END = 1796197385  # 2026-12-02 07:43:05 UTC
RUN = Owner("20261202T073303Z", "ci-7", 4242)
NAME = f"lamassu-lock 20261202T073303Z {LEASE_END} 4242@ci-7"


def held_by(name: str) -> Holder:
    return Holder(77, name, "10.0.0.5", "2026-12-02T07:33:05Z")


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (RUN, NAME),
        (Owner("r1", "h" * 80, 1), (f"lamassu-lock r1 {LEASE_END} 1@" + "h" * 80)[:APPLICATION_NAME_BYTES]),
    ],
)
def test_the_holder_name_carries_the_run_and_its_lease_end_and_fits_the_server_limit(owner, name):
    assert owner.holder_name(LEASE_END) == name
    assert len(name.encode()) <= APPLICATION_NAME_BYTES
    assert lease_until(name) == LEASE_END
    parsed = Owner.parse(name)
    assert parsed is not None and (parsed.run_id, parsed.controller_pid) == (owner.run_id, owner.controller_pid)
    assert owner.controller_host.startswith(parsed.controller_host)


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        (NAME, True),
        (RUN.holder_name(LEASE_END + 600), True),  # whatever its lease end
        ("lamassu-lock 20261202T073303Z 4242@ci-7", True),  # a holder of before the lease
        ("lamassu-lock 20261202T073303Z 1796197385 4243@ci-7", False),
        ("lamassu-lock 20261202T073304Z 1796197385 4242@ci-7", False),
        ("lamassu-lock 20261202T073303Z 1796197385 4242@ci-8", False),
        ("lamassu-lock 20261202T073303Z 1796197385 4242@ci-77", False),
        ("psql", False),
    ],
)
def test_a_holder_is_ours_by_run_id_pid_and_host(name, ours):
    assert RUN.owns(name) is ours


def test_a_cut_host_is_still_ours_and_no_other_hosts():
    owner = Owner("20261202T073303Z", "controller-" + "x" * 60, 7)
    cut = owner.holder_name(LEASE_END)
    assert len(cut.encode()) == APPLICATION_NAME_BYTES
    assert owner.owns(cut) and owner.owns(owner.holder_name(LEASE_END + 1))
    assert not Owner(owner.run_id, "controller-y", 7).owns(cut)


@pytest.mark.parametrize(
    ("name", "owner", "lease"),
    [
        ("lamassu-lock r1 4242@h", Owner("r1", "h", 4242), None),
        ("lamassu-lock r1 99 4242@h", Owner("r1", "h", 4242), 99),
    ],
)
def test_holders_with_and_without_a_lease_end(name, owner, lease):
    assert Owner.parse(name) == owner and lease_until(name) == lease


@pytest.mark.parametrize("name", ["", "lamassuiot.postgres", "lamassu-lock r1", "lamassu-lock r1 x@h", "psql"])
def test_other_sessions_are_no_run(name):
    assert Owner.parse(name) is None and lease_until(name) is None


@pytest.mark.parametrize(
    "owner",
    [
        Owner("", "h", 1),
        Owner("two words", "h", 1),
        Owner("r", "", 1),
        Owner("r", "a b", 1),
        Owner("r", "h", 0),
        Owner("r" * 40, "h", 1),  # the cut would take the process id
    ],
)
def test_an_owner_that_cannot_be_named_is_refused(owner):
    with pytest.raises(InvalidInput):
        owner.validate()


@pytest.mark.parametrize(("lease", "timeout"), [(0, 60), (60, 0), (-1, 60)])
def test_a_lease_and_a_time_limit_are_positive(lease, timeout):
    with pytest.raises(InvalidInput):
        LockRequest(RUN, lease=lease, timeout=timeout).validate()


@pytest.mark.parametrize(
    ("run_id", "started"),
    [("20261202T073303Z", "2026-12-02 07:33:03 UTC"), ("adhoc", "adhoc")],
)
def test_a_run_id_stands_for_its_start_time(run_id, started):
    assert run_started(run_id) == started


def test_the_refusal_names_the_run_and_both_ways_out():
    holder = held_by(NAME)
    message = refusal(holder, "db1:5432")
    for fragment in (
        "db1:5432",
        "run 20261202T073303Z",
        "2026-12-02 07:33:03 UTC",
        "controller ci-7",
        "process 4242",
        "server process 77",
        "nothing was changed",
        "lease runs out at 2026-12-02 07:43:05 UTC",
        "-e lamassu_break_lock=20261202T073303Z",
    ):
        assert fragment in message
    assert "pg_terminate_backend" not in message
    assert holder.as_dict()["controller_pid"] == 4242 and holder.as_dict()["lease_until"] == LEASE_END


def test_a_session_that_is_no_run_is_refused_with_the_terminate_hint():
    message = refusal(held_by("psql"), "db1:5432")
    assert "pg_terminate_backend(77)" in message and "lamassu_break_lock" not in message


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


@pytest.mark.parametrize(
    ("name", "break_run", "server_now", "allowed", "fragment"),
    [
        (NAME, None, LEASE_END, False, "lease runs out at"),
        (NAME, None, LEASE_END + TAKEOVER_GRACE_SECONDS, False, "lease runs out at"),
        (NAME, None, LEASE_END + TAKEOVER_GRACE_SECONDS + 1, True, "its lease ended at 2026-12-02 07:43:05 UTC"),
        ("lamassu-lock 20261202T073303Z 4242@ci-7", None, LEASE_END * 2, False, "wait for that run"),
        ("psql", None, LEASE_END * 2, False, "pg_terminate_backend(77)"),
        (NAME, "20261202T073303Z", LEASE_END, True, "broken on request"),
        (NAME, "20261202T000000Z", LEASE_END, False, "break_lock names run 20261202T000000Z, but"),
        ("psql", "20261202T073303Z", LEASE_END, False, "not a Lamassu run"),
    ],
)
def test_a_holder_is_taken_over_when_its_lease_lapsed_or_its_run_is_named(
    name, break_run, server_now, allowed, fragment
):
    verdict, words = judge(held_by(name), break_run, server_now, "db1:5432")
    assert verdict is allowed and fragment in words
    if break_run is not None and not allowed:
        assert "run 20261202T073303Z" in words or "not a Lamassu run" in words


@pytest.mark.parametrize(
    ("payloads", "lease"),
    [
        ([], None),
        (["20261202T073303Z 4242@ci-7 600"], 600),
        (["20261202T073303Z 4242@ci-7 600", "20261202T073303Z 4242@ci-7 30"], 30),
        (["20261202T073303Z 4243@ci-7 600"], None),
        (["20261202T073303Z 4242@ci-7 x", "20261202T073303Z 4242@ci-7 0"], None),
    ],
)
def test_a_holder_heeds_the_renewals_of_its_own_run(payloads, lease):
    assert requested_lease(payloads, RUN) == lease


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
    request = LockRequest(Owner("r1", "ctl", child.pid), watch_pid=child.pid)
    with pytest.raises(InvalidInput, match="not running where the module runs"):
        take(ConnectionParams(), request, check_mode=False, warn=print)  # refused before any connection
