"""The plan of a host's upgrade (module_utils/upgrade_plan.py): done or not, the steps, the copies, the reading the
report reuses, every problem with its fix."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import Fix, InvalidInput, Problem
from ansible_collections.lamassuiot.postgres.plugins.module_utils.upgrade_plan import (
    OPTION,
    STEPS,
    RunChoices,
    copy_plan,
    plan,
    unread_plan,
)

MB = 1000000


def info(legacy=("ca", "kms"), done=False, problems=(), sizes=None):
    """The part of postgres_lamassu_info's result the plan reads."""
    services = ["ca", "kms", "va"]
    sizes = sizes or {}
    return {
        "services": {s: {} for s in services},
        "legacy": {s: {"size_bytes": sizes.get(s, 10 * MB)} for s in services},
        "phases": {"legacy": list(legacy)},
        "upgrade_done": done,
        "problems": list(problems),
    }


def test_a_host_with_everything_to_do_runs_every_step_but_the_start():
    got = plan(info(), RunChoices(), check_mode=False, migrations_given=True, database="lamassu")
    assert got["done"] is False
    assert got["steps"] == ["lock", "preflight", "stop", "copy", "migrate", "cutover", "login_check"]
    assert got["problems"] == []


def test_a_done_host_runs_nothing_and_the_report_reuses_the_preflight():
    got = plan(info(legacy=(), done=True), RunChoices(), False, True, "lamassu")
    assert got["done"] is True and got["steps"] == [] and got["report_reading"] == "preflight"


@pytest.mark.parametrize(
    "choices",
    [RunChoices(cutover_target="files"), RunChoices(start_services=True)],
)
def test_a_done_host_with_something_to_write_or_start_is_not_done(choices):
    got = plan(info(legacy=(), done=True), choices, False, True, "lamassu")
    assert got["done"] is False and "cutover" in got["steps"]
    assert ("start" in got["steps"]) == choices.start_services


def test_a_problem_stops_the_fast_path_and_carries_its_fix():
    fix = Fix("if_target_exists", "replace", "the copy replaces them")
    problems = [Problem("schema 'ca' is occupied", fix), "legacy database 'kms' is missing"]
    got = plan(info(done=True, problems=problems), RunChoices(), False, True, "lamassu")
    assert got["done"] is False
    assert got["problems"] == [
        {"msg": "schema 'ca' is occupied", "fix": {"option": "if_target_exists", "value": "replace", "why": fix.why}},
        {"msg": "legacy database 'kms' is missing", "fix": None},
    ]


def test_the_controller_problems_and_missing_tls_files_are_problems_too():
    choices = RunChoices(
        host="pg1",
        controller_problems=("report directory /r is not writable",),
        tls_missing={"lamassu_pg_ca_cert": "/ca.pem"},
    )
    got = plan(info(legacy=(), done=True), choices, False, True, "lamassu")
    assert got["done"] is False
    assert [p["msg"] for p in got["problems"]] == [
        "report directory /r is not writable",
        "TLS file(s) of the connection missing on pg1: lamassu_pg_ca_cert = /ca.pem",
    ]


@pytest.mark.parametrize(
    ("check_mode", "migrations_given", "legacy", "login_check", "migrate", "login"),
    [
        (False, False, ("ca",), True, False, True),  # no tree: nothing to migrate
        (True, True, ("ca",), True, False, False),  # check mode, a schema not copied yet: no history to plan from
        (True, True, (), True, True, False),  # check mode never logs in
        (False, True, (), False, True, False),  # login check turned off
    ],
)
def test_the_migrate_and_login_check_steps(check_mode, migrations_given, legacy, login_check, migrate, login):
    got = plan(info(legacy=legacy), RunChoices(login_check=login_check), check_mode, migrations_given, "lamassu")
    assert ("migrate" in got["steps"]) == migrate
    assert ("login_check" in got["steps"]) == login
    assert ("stop" in got["steps"]) == bool(legacy)
    assert got["steps"] == [step for step in STEPS if step in got["steps"]]  # in order


@pytest.mark.parametrize(
    ("cutover_prefix", "report_prefix", "reading"),
    [("", "", "cutover"), ("old_", "old_", "cutover"), ("old_", "", "none")],
)
def test_the_report_reuses_the_cutover_reading_only_of_the_same_legacy_databases(
    cutover_prefix, report_prefix, reading
):
    choices = RunChoices(cutover_source_prefix=cutover_prefix, report_source_prefix=report_prefix)
    assert plan(info(), choices, False, True, "lamassu")["report_reading"] == reading


def test_copies_larger_than_the_threshold_run_in_the_background_with_a_progress_file():
    legacy = {"ca": {"size_bytes": 600 * MB}, "kms": {"size_bytes": 10 * MB}, "va": {"size_bytes": None}}
    got = copy_plan(["ca", "kms", "va"], legacy, RunChoices(host="pg1", progress_dir="/p"), "lamassu", False)
    assert got["foreground"] == ["kms", "va"] and got["background"] == ["ca"]
    assert got["progress_files"] == {"ca": "/p/lamassu-db-to-schema-pg1-lamassu-ca.json"}
    assert got["async_seconds"] == 0 and got["background_seconds"] == 86400


@pytest.mark.parametrize(
    ("choices", "check_mode", "background"),
    [
        (RunChoices(copy_parallel=True), False, ["ca", "kms"]),
        (RunChoices(copy_parallel=True), True, []),  # Ansible refuses async in check mode
        (RunChoices(copy_parallel=True, async_jobs=False), False, []),  # the host cannot run async jobs
        (RunChoices(async_threshold_mb=0), False, ["ca", "kms"]),
    ],
)
def test_which_copies_run_in_the_background(choices, check_mode, background):
    got = copy_plan(
        ["ca", "kms"], {"ca": {"size_bytes": MB}, "kms": {"size_bytes": MB}}, choices, "lamassu", check_mode
    )
    assert got["background"] == background
    assert got["foreground"] == [s for s in ["ca", "kms"] if s not in background]


def test_an_async_limit_bounds_both_kinds_of_copy_except_where_async_is_refused():
    choices = RunChoices(async_seconds=3600)
    assert copy_plan(["ca"], {}, choices, "lamassu", False)["async_seconds"] == 3600
    assert copy_plan(["ca"], {}, choices, "lamassu", False)["background_seconds"] == 3600
    assert copy_plan(["ca"], {}, choices, "lamassu", True)["async_seconds"] == 0


def test_an_unread_host_goes_on_to_the_lock_and_the_preflight_that_stops_on_its_problem():
    got = unread_plan(RunChoices(start_services=True), "preflight could not read the server: refused")
    assert got["done"] is False
    assert got["steps"] == ["lock", "preflight"]
    assert got["copies"]["foreground"] == [] and got["copies"]["background"] == []
    assert got["problems"] == [{"msg": "preflight could not read the server: refused", "fix": None}]
    assert got["report_reading"] == "none"


def test_choices_from_role_variables_are_typed_and_unset_ones_take_the_defaults():
    got = RunChoices.from_option(
        {"copy_parallel": "true", "async_threshold_mb": "0", "async_seconds": "60", "progress_dir": None}
    )
    assert got.copy_parallel is True and got.async_threshold_mb == 0.0 and got.async_seconds == 60
    assert got.progress_dir == RunChoices().progress_dir


def test_bad_choices_are_refused_naming_each_one():
    with pytest.raises(InvalidInput) as refused:
        RunChoices.from_option({"async_threshold_mb": "big", "copy_parallel": "maybe"})
    assert "async_threshold_mb" in str(refused.value) and "copy_parallel" in str(refused.value)


def test_the_module_option_is_the_choices_with_their_defaults():
    assert set(OPTION) == set(RunChoices.__dataclass_fields__)
    assert OPTION["async_threshold_mb"] == {"type": "float", "default": 512}
    assert OPTION["controller_problems"] == {"type": "list", "elements": "str", "default": []}
    assert RunChoices.from_option({k: v["default"] for k, v in OPTION.items()}) == RunChoices()


ONLINE_PROBLEM = {
    "msg": "wal_level is 'replica': ... ALTER SYSTEM SET wal_level = logical ...",
    "fix": {"option": "move_mode", "value": "offline", "why": "the services stay stopped for the whole copy"},
}


def test_online_the_copy_runs_live_before_the_stop_and_the_switch_after_it():
    got = plan(info(), RunChoices(move_mode="online"), False, True, "lamassu")
    assert got["steps"] == ["lock", "preflight", "live", "stop", "switch", "migrate", "cutover", "login_check"]
    assert got["copies"]["foreground"] == ["ca", "kms", "va"]  # the live copies


def test_online_what_keeps_the_online_move_from_running_stops_the_preflight():
    reading = {**info(), "online": {"mode": "online", "ready": False, "problems": [ONLINE_PROBLEM]}}
    got = plan(reading, RunChoices(move_mode="online", controller_problems=("report dir",)), False, True, "lamassu")
    assert got["problems"] == [ONLINE_PROBLEM, {"msg": "report dir", "fix": None}]
    # offline, or with nothing left to copy, they are only facts
    assert plan(reading, RunChoices(), False, True, "lamassu")["problems"] == []
    nothing_left = {**info(legacy=(), done=True), "online": reading["online"]}
    got = plan(nothing_left, RunChoices(move_mode="online"), False, True, "lamassu")
    assert got["problems"] == [] and got["done"] is True


def test_an_unknown_move_mode_is_refused():
    with pytest.raises(InvalidInput) as refused:
        RunChoices.from_option({"move_mode": "hot"})
    assert "move_mode" in str(refused.value)
    assert OPTION["move_mode"] == {"type": "str", "default": "offline", "choices": ["offline", "online"]}
