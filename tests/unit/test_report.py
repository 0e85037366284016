"""The decisions of the run report and the failure note (module_utils/report.py): tables of inputs and outcomes."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.report import (
    NOT_RUN,
    duration,
    failure_fix,
    failure_message,
    fleet_phase,
    fleet_report,
    host_summary,
    migrated_by_this_run,
    playbook_fix,
    service_rows,
    service_runs,
    step_durations,
)
from ansible_collections.lamassuiot.postgres.plugins.module_utils.report_runs import (
    is_run_report,
    next_steps,
    run_index,
    run_started_at,
)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"msg": "Preflight found 1 problem(s)"}, "Preflight found 1 problem(s)"),
        ({}, "failed without a message"),
        ({"msg": "", "results": []}, ""),
        (
            {
                "msg": "One or more items failed",
                "results": [
                    {"item": "ca", "failed": False, "msg": "ok"},
                    {"item": "va", "failed": True, "msg": "other sessions are connected"},
                    {"item": "kms", "failed": True},
                    {"item": "alerts", "skipped": True},
                ],
            },
            "va: other sessions are connected; kms: failed",
        ),
        ({"msg": "all items fine", "results": [{"item": "ca", "failed": False}]}, "all items fine"),
        ({"results": [{"item": {"name": "ca"}, "failed": True, "msg": "no"}]}, "{'name': 'ca'}: no"),
    ],
)
def test_failure_message(result, message):
    assert failure_message(result) == message


def run(item, pending=(), applied=(), failed=False):
    return {"item": item, "pending": list(pending), "applied": list(applied), "failed": failed}


@pytest.mark.parametrize(
    ("runs", "check_mode", "at_head"),
    [
        ([], False, set()),
        ([run("ca"), run("va", pending=[2])], False, {"ca"}),
        ([run("ca", applied=[1])], False, {"ca"}),
        ([run("ca", applied=[1])], True, set()),  # check mode: would apply, did not
        ([run("ca")], True, {"ca"}),  # nothing to apply
        ([run("ca", failed=True)], False, set()),
        ([{"item": "ca", "skipped": True}], False, set()),
    ],
)
def test_migrated_by_this_run(runs, check_mode, at_head):
    assert migrated_by_this_run(runs, check_mode) == at_head


@pytest.mark.parametrize(
    ("phases", "phase"),
    [
        ([], "unknown"),
        (["cleaned", "copied", "migrated"], "copied"),
        (["cleaned"], "cleaned"),
        (["migrated", "legacy"], "legacy"),
    ],
)
def test_fleet_phase(phases, phase):
    assert fleet_phase([{"phase": p} for p in phases]) == phase


@pytest.mark.parametrize(
    ("started", "finished", "seconds"),
    [(None, 5.0, None), (1.0, None, None), ("100.04", "112.5", 12.5), (100, 100.04, 0.0)],
)
def test_duration(started, finished, seconds):
    assert duration(started, finished) == seconds


def service(phase, legacy=None, schema=None, rows=None, verified=False):
    return {
        "phase": phase,
        "legacy_goose_version": legacy,
        "schema_goose_version": schema,
        "rows_copied": rows,
        "copy_duration_s": 0.5 if rows is not None else None,
        "verified": verified,
    }


BEFORE = {"services": {"ca": service("legacy", legacy=1), "va": service("legacy", legacy=2)}}
AFTER = {
    "services": {"ca": service("copied", 1, 1, rows=10, verified=True), "va": service("migrated", 2, 3, rows=5)},
    "server": {"version": "15.8"},
    "problems": ["a problem"],
}


def test_host_summary_of_an_upgraded_host():
    summary = host_summary(
        "db1",
        ["ca", "va"],
        AFTER,
        before=BEFORE,
        migrations=[run("ca")],
        started_at=100.0,
        finished_at="112.46",
        groups=["dev", "lamassu_postgres"],
    )
    assert summary == {
        "name": "db1",
        "groups": ["dev"],
        "status": "ok",
        "phase": "migrated",  # ca is copied to info, but its migrate run left nothing pending
        "duration_s": 12.5,
        "steps": [],
        "failed_task": None,
        "message": None,
        "fix": None,
        "problems": ["a problem"],
        "server": "15.8",
        "rows_copied": 15,
        "with_before": True,
        "move_mode": "offline",
        "stop_window_s": None,
        "verdict": "db1: ok in 12.5 s; services: 2 migrated; 1 problem(s) would stop an upgrade",
        "services": [
            {
                "name": "ca",
                "phase_before": "legacy",
                "phase": "migrated",
                "goose_before": 1,
                "goose_after": 1,
                "rows_copied": 10,
                "copy_duration_s": 0.5,
                "verified": True,
                "dsn": None,
                **NOT_RUN,
            },
            {
                "name": "va",
                "phase_before": "legacy",
                "phase": "migrated",
                "goose_before": 2,
                "goose_after": 3,
                "rows_copied": 5,
                "copy_duration_s": 0.5,
                "verified": False,
                "dsn": None,
                **NOT_RUN,
            },
        ],
    }


@pytest.mark.parametrize(
    ("after", "failure", "problems", "status", "message", "reported_problems"),
    [
        (AFTER, {}, None, "ok", None, ["a problem"]),
        (AFTER, {}, [], "ok", None, []),  # the preflight's problems win, even none
        (AFTER, {"task": "Copy", "msg": "boom"}, ["p"], "failed", "boom", ["p"]),
        ({"failed": True, "msg": "could not connect"}, {}, None, "unreachable", "could not connect", []),
        ({"failed": True}, {}, None, "unreachable", "Ansible could not reach the host", []),
        ({"failed": True, "msg": "could not connect"}, {"task": "Lock", "msg": "held"}, None, "failed", "held", []),
    ],
)
def test_host_summary_status(after, failure, problems, status, message, reported_problems):
    summary = host_summary("db1", ["ca", "va"], after, failure=failure, problems=problems)
    assert (summary["status"], summary["message"], summary["problems"]) == (status, message, reported_problems)
    assert summary["failed_task"] == (failure or {}).get("task")
    if "services" not in after:
        assert (summary["phase"], summary["services"], summary["rows_copied"], summary["server"]) == (
            "unknown",
            [],
            0,
            None,
        )


def test_host_summary_without_before_compares_with_after():
    summary = host_summary("db1", ["ca"], AFTER, before={})
    assert summary["services"][0]["phase_before"] == "copied" and summary["services"][0]["goose_before"] == 1
    assert summary["duration_s"] is None


def fleet(hosts, active, summaries, directory="./reports", cwd="/home/op/./run"):
    return fleet_report(
        title="upgrade",
        run_id="20260101T000000Z",
        written_at="2026-01-01 00:00:00",
        directory=directory,
        cwd=cwd,
        services=["ca", "va"],
        hosts=hosts,
        active=active,
        summaries=summaries,
        groups=[["stg", "lamassu_postgres"]] * len(hosts),
    )


def summary(name, status="ok", phase="migrated", seconds=1.5):
    return {"name": name, "status": status, "phase": phase, "duration_s": seconds}


@pytest.mark.parametrize(
    ("directory", "cwd", "where"),
    [
        ("./reports", "/home/op", "/home/op/reports"),
        ("reports", "/home/op/./run", "/home/op/run/reports"),
        ("/var/./reports", "/home/op", "/var/reports"),
    ],
)
def test_fleet_report_directory(directory, cwd, where):
    report = fleet([], [], [], directory=directory, cwd=cwd)
    assert report["directory"] == where and report["basename"] == "lamassu-upgrade-20260101T000000Z"


def test_fleet_report_of_a_stopped_rollout():
    report = fleet(
        ["stg1", "stg2", "gone", "prod1"],
        ["stg1", "stg2", "prod1"],
        [summary("stg1", "failed", "copied", 3.25), summary("stg2", seconds=None), {}, {}],
    )
    assert [(h["name"], h["status"]) for h in report["hosts"]] == [
        ("stg1", "failed"),
        ("stg2", "ok"),
        ("gone", "unreachable"),
        ("prod1", "not reached"),
    ]
    assert report["phase_counts"] == {"legacy": 0, "copied": 1, "migrated": 1, "cleaned": 0, "unknown": 0}
    assert (report["failed"], report["unreachable"], report["not_reached"]) == (["stg1"], ["gone"], ["prod1"])
    assert report["max_duration_s"] == 3.25
    gone = report["hosts"][2]
    assert (
        gone["groups"] == ["stg"]
        and gone["message"] == "Ansible could not reach the host"
        and gone["phase"] == "unknown"
    )
    assert report["hosts"][3]["message"] is None


def test_fleet_report_counts_unknown_phases_of_failed_hosts():
    report = fleet(
        ["a", "b"], ["a", "b"], [summary("a", "failed", "unknown", None), summary("b", "unreachable", "unknown")]
    )
    assert report["phase_counts"]["unknown"] == 1
    assert report["max_duration_s"] == 1.5
    assert fleet(["a"], ["a"], [summary("a", seconds=None)])["max_duration_s"] == 0


@pytest.mark.parametrize(
    ("status_args", "expected"),
    [
        ({}, "db1: ok in 12.3 s; services: 1 copied, 1 migrated"),
        (
            {"problems": ["x", "y"]},
            "db1: ok in 12.3 s; services: 1 copied, 1 migrated; 2 problem(s) would stop an upgrade",
        ),
        (
            {"failure": {"task": "Copy", "msg": "boom"}},
            "db1: FAILED at 'Copy' in 12.3 s; services: 1 copied, 1 migrated",
        ),
    ],
)
def test_the_one_line_verdict_of_a_host(status_args, expected):
    after = {
        "services": {
            "ca": {"phase": "migrated", "schema_goose_version": 2},
            "va": {"phase": "copied", "schema_goose_version": 1},
        },
        "problems": [],
    }
    summary = host_summary("db1", ["ca", "va"], after, started_at=100.0, finished_at=112.3, **status_args)
    assert summary["verdict"] == expected


def test_the_verdict_of_an_unreachable_host():
    summary = host_summary("db1", ["ca"], {"failed": True, "msg": "Cannot connect"})
    assert summary["verdict"] == "db1: UNREACHABLE: Cannot connect"


def copy_result(item, tables, seconds, changed=True):
    return {"item": item, "changed": changed, "duration_s": seconds, "tables": [{"bytes": b} for b in tables]}


def test_service_runs_of_copies_and_migrations():
    runs = service_runs(
        [
            copy_result("ca", [3_000_000, 1_000_000], 2.0),
            copy_result({"item": "va"}, [500_000], 0.0),  # waited for asynchronously: the service one level deeper
            copy_result("kms", [9_000_000], 1.0, changed=False),  # copied by an earlier run: nothing this run
            {"item": "alerts", "skipped": True},
        ],
        [
            {"item": "ca", "applied": [{"version": 2, "name": "2_add.sql", "duration_ms": 7, "statements": ["x"]}]},
            {
                "item": "va",
                "failed": True,
                "msg": "3 files older than the current version: set allow_missing",
                "fix": {"option": "allow_missing", "value": True, "why": "applies them"},
            },
        ],
        {"allow_missing": "schema_migrate_allow_missing"},
    )
    assert runs["ca"] == {
        **NOT_RUN,
        "tables": 2,
        "mb_copied": 4.0,
        "mb_per_s": 2.0,
        "migrations": [{"version": 2, "name": "2_add.sql", "duration_ms": 7}],
    }
    assert (runs["va"]["tables"], runs["va"]["mb_per_s"]) == (1, None)
    assert runs["va"]["failure"].startswith("3 files")
    assert runs["va"]["fix"]["setting"] == "-e schema_migrate_allow_missing=true"
    assert runs["kms"] == {**NOT_RUN, "migrations": []}
    assert "alerts" not in runs


VARIABLES = {"discard_changes": "lamassu_rollback_discard_changes", "break_lock": "lamassu_break_lock"}


@pytest.mark.parametrize(
    ("fix", "expected"),
    [
        (None, None),
        ({}, None),
        ("None", None),  # what a template may make of a missing fix
        (
            {"option": "discard_changes", "value": True, "why": "loses them"},
            {
                "variable": "lamassu_rollback_discard_changes",
                "value": "true",
                "why": "loses them",
                "setting": "-e lamassu_rollback_discard_changes=true",
            },
        ),
        (
            {"option": "break_lock", "value": "20261202T073303Z", "why": "w"},
            {
                "variable": "lamassu_break_lock",
                "value": "20261202T073303Z",
                "why": "w",
                "setting": "-e lamassu_break_lock=20261202T073303Z",
            },
        ),
        (
            {"option": "if_target_exists", "value": "replace", "why": "w"},
            {"variable": None, "value": "replace", "why": "w", "setting": "if_target_exists=replace"},
        ),
    ],
)
def test_playbook_fix(fix, expected):
    assert playbook_fix(fix, VARIABLES) == expected


FIX = {"option": "if_target_exists", "value": "replace", "why": "w"}


@pytest.mark.parametrize(
    ("result", "fix"),
    [
        ({"failed": True, "msg": "x"}, {}),
        ({"failed": True, "msg": "x", "fix": FIX}, FIX),
        ({"results": [{"failed": True, "msg": "no fix"}, {"failed": True, "fix": FIX}, {"failed": True}]}, FIX),
        ({"results": [{"failed": False, "fix": FIX}]}, {}),
    ],
)
def test_failure_fix(result, fix):
    assert failure_fix(result) == fix


def test_the_fix_of_a_failed_host_is_its_failure_s():
    failure = {"task": "Copy", "msg": "set discard_changes=true", "fix": {**FIX, "option": "discard_changes"}}
    summary = host_summary("db1", [], {"services": {}}, failure=failure, fix_variables=VARIABLES)
    assert summary["fix"]["setting"] == "-e lamassu_rollback_discard_changes=replace"
    assert host_summary("db1", [], {"services": {}}, failure={**failure, "fix": {}})["fix"] is None


@pytest.mark.parametrize(
    ("marks", "failed", "steps"),
    [
        ([], False, []),
        ([["preflight", 101.0], ["stop", 101.5], ["copy", 104.0]], True, [1.0, 0.5, 2.5, ("migrate", 6.0)]),
        ([["preflight", 101.0], ["cutover", 108.0]], False, [1.0, 7.0, ("finish", 2.0)]),
    ],
)
def test_step_durations(marks, failed, steps):
    got = step_durations(marks, 100.0, "110.0", failed)
    expected = [{"name": m[0], "seconds": s} for m, s in zip(marks, steps)]
    if marks:
        expected.append({"name": steps[-1][0], "seconds": steps[-1][1]})
    assert got == expected
    assert step_durations(marks, None, 110.0, failed) == []


def test_an_online_run_fails_in_the_step_after_its_last_mark_in_the_online_order():
    got = step_durations([["preflight", 101.0]], 100.0, 110.0, True, "online")
    assert got == [{"name": "preflight", "seconds": 1.0}, {"name": "live", "seconds": 9.0}]


@pytest.mark.parametrize(
    ("mode", "marks", "window"),
    [
        (
            "offline",
            [["preflight", 101.0], ["stop", 102.0], ["copy", 130.0], ["migrate", 131.0], ["cutover", 132.5]],
            31.5,
        ),
        (
            "online",
            [["preflight", 101.0], ["live", 130.0], ["stop", 131.0], ["switch", 133.0], ["cutover", 134.5]],
            4.5,
        ),
        ("offline", [["preflight", 101.0], ["cutover", 102.0]], None),  # nothing stopped (the fast path's cutover)
    ],
)
def test_the_report_says_how_long_the_services_were_stopped(mode, marks, window):
    summary = host_summary("db1", ["ca"], AFTER, steps=marks, started_at=100.0, finished_at=140.0, move_mode=mode)
    assert (summary["move_mode"], summary["stop_window_s"]) == (mode, window)
    if window is not None:
        assert f"({mode} move, services stopped {window:.1f} s)" in summary["verdict"]


def test_run_started_at_reads_the_run_id():
    assert run_started_at("20261205T230102Z") == "2026-12-05 23:01:02"
    assert run_started_at("my-run") is None


def next_of(title="upgrade", check_mode=False, failed=(), unreachable=(), not_reached=(), **phases):
    counts = {"legacy": 0, "copied": 0, "migrated": 0, "cleaned": 0, "unknown": 0, **phases}
    report = {
        "title": title,
        "failed": list(failed),
        "unreachable": list(unreachable),
        "not_reached": list(not_reached),
        "phase_counts": counts,
        "run": {"inventory": ["inv/prod"], "check_mode": check_mode},
    }
    return next_steps(report)


def test_next_steps_for_the_fleet():
    assert next_of(migrated=2) == [
        "Start the services on their schemas (the connection strings are in each host's table) and check them; "
        "then drop the legacy databases: ansible-playbook lamassuiot.postgres.cleanup -i inv/prod"
    ]
    failed = next_of(failed=["db1"], migrated=1)
    assert failed[0].endswith("ansible-playbook lamassuiot.postgres.upgrade -i inv/prod --limit db1")
    assert (
        failed[1]
        == "Or go back to the legacy databases: ansible-playbook lamassuiot.postgres.rollback -i inv/prod --limit db1"
    )
    assert next_of("cleanup", cleaned=3) == [
        "Nothing left to do: every service runs from its schema and the legacy databases are gone."
    ]
    assert next_of("status", legacy=1)[0].endswith("ansible-playbook lamassuiot.postgres.upgrade -i inv/prod")
    assert "lamassu_migrations_dir" in next_of(copied=1)[0]
    assert next_of(check_mode=True, legacy=1)[0].startswith("This was a check run and changed nothing")
    assert next_of(unreachable=["db2"])[0].startswith("Make db2 reachable")
    assert next_of(not_reached=["db3"])[0].startswith("The rollout stopped before db3")
    assert next_of("rollback", failed=["db1"]) == [
        "Fix what failed on db1 (see Failures), then run again: "
        "ansible-playbook lamassuiot.postgres.rollback -i inv/prod --limit db1"
    ]


def test_fleet_report_holds_the_run_and_what_next():
    report = fleet(["a"], ["a"], [summary("a")])
    assert (
        report["run"]["started_at"] == "2026-01-01 00:00:00" and report["run"]["finished_at"] == "2026-01-01 00:00:00"
    )
    assert report["next"] and report["with_before"] is False


def test_run_index_lists_the_runs_newest_first():
    old = fleet(["a"], ["a"], [{**summary("a", "failed"), "verdict": "a: FAILED at 'Copy'"}])
    new = {**fleet(["a", "b"], ["a"], [summary("a"), {}]), "written_at": "2026-01-02 00:00:00", "run_id": "r2"}
    runs = run_index([old, new])
    assert [run["run_id"] for run in runs] == ["r2", "20260101T000000Z"]
    assert runs[1]["hosts"] == [{"name": "a", "status": "failed", "verdict": "a: FAILED at 'Copy'"}]
    assert runs[0]["hosts"][1] == {"name": "b", "status": "unreachable", "verdict": "unreachable"}
    assert runs[1]["html"] == "lamassu-upgrade-20260101T000000Z.html"
    assert all(is_run_report(report) for report in (old, new))
    assert not any(is_run_report(data) for data in ([], {"title": "x"}, {**old, "hosts": [{"name": "a"}]}))


def test_the_connection_string_column_names_the_services_own_role():
    """The column shows info's dsn, which names the role the service logs in with, not the one Ansible uses."""
    pgx = "host=db port=5432 user=lamassu_app dbname=lamassu search_path=ca"
    info = {
        "services": {
            "ca": {
                "phase": "copied",
                "service_role": "lamassu_app",
                "dsn": {"pgx": pgx, "libpq": "host=db port=5432 user=lamassu_app dbname=lamassu"},
            }
        }
    }
    [row] = service_rows(info, {}, ["ca"], set())
    assert row["dsn"] == pgx
