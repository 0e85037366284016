# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the run report and the failure note say: plain data in, plain data out.

The filter plugins of the collection call these on the controller; the report templates only format the result.

* ``failure_message``: the message of a failed task (``ansible_failed_result``), naming each failed loop item;
* ``host_summary``: one host of the report, from the info results before and after the run and what the run did;
* ``fleet_report``: every host of the play, the hosts per phase and the names for the file.
"""

from __future__ import annotations

import re

from .info_rules import PHASES

UNKNOWN_PHASE = "unknown"
# The status of a host, and whether its phase counts in the fleet summary.
COUNTED_STATUSES = ("ok", "failed")
FLEET_GROUP = "lamassu_postgres"
UNREACHABLE_MESSAGE = "Ansible could not reach the host"


def failure_message(result: dict) -> str:
    """``item: msg`` of each failed loop item, or the task's own message."""
    failed = [run for run in result.get("results") or [] if run.get("failed")]
    named = "; ".join(f"{run.get('item')}: {run.get('msg', 'failed')}" for run in failed)
    return named or result.get("msg", "failed without a message")


def migrated_by_this_run(migrations: list[dict], check_mode: bool) -> set[str]:
    """Services whose migrate run of this play left nothing pending (the info module cannot see the migration
    files, which stay on the controller): they are migrated even when there was nothing to apply. In check mode
    what would be applied is not applied."""
    return {
        run["item"]
        for run in migrations
        if run.get("pending") is not None
        and not run["pending"]
        and not run.get("failed", False)
        and (not run.get("applied") or not check_mode)
    }


def service_rows(after: dict, before: dict, services: list[str], at_head: set[str]) -> list[dict]:
    """Per service: phase and goose version before and after, the copy."""
    if "services" not in after:
        return []
    rows = []
    for name in services:
        now = after["services"][name]
        then = before["services"].get(name, now) if "services" in before else now
        rows.append(
            {
                "name": name,
                "phase_before": then["phase"],
                "phase": "migrated" if now["phase"] == "copied" and name in at_head else now["phase"],
                "goose_before": goose_version(then),
                "goose_after": goose_version(now),
                "rows_copied": now.get("rows_copied"),
                "copy_duration_s": now.get("copy_duration_s"),
                "verified": now.get("verified"),
            }
        )
    return rows


def goose_version(service: dict) -> int | None:
    """The version that counts: the legacy database's until the copy, then the schema's."""
    return service.get("legacy_goose_version" if service["phase"] == "legacy" else "schema_goose_version")


def fleet_phase(services: list[dict]) -> str:
    """The phase every service of the host has reached at least."""
    if not services:
        return UNKNOWN_PHASE
    return min((s["phase"] for s in services), key=PHASES.index)


def duration(started_at: float | str | None, finished_at: float | str | None) -> float | None:
    if started_at is None or finished_at is None:
        return None
    return round(float(finished_at) - float(started_at), 1)


def host_summary(
    name: str,
    services: list[str],
    after: dict,
    before: dict | None = None,
    migrations: list[dict] | None = None,
    failure: dict | None = None,
    problems: list[str] | None = None,
    started_at: float | str | None = None,
    finished_at: float | str | None = None,
    groups: list[str] | None = None,
    check_mode: bool = False,
) -> dict:
    """One host of the report. ``after``: the info result the report read (failed when the server could not be
    read); ``before``: an info result of before the run (empty: ``after``); ``migrations``: the results of the
    migrate runs; ``failure``: ``task`` and ``msg`` of the failure of the run; ``problems``: the preflight's (None:
    those of ``after``)."""
    rows = service_rows(after, before or after, services, migrated_by_this_run(migrations or [], check_mode))
    if failure:
        status = "failed"
    elif "services" not in after:
        status = "unreachable"
    else:
        status = "ok"
    message = (failure or {}).get("msg")
    if not failure and status == "unreachable":
        message = after.get("msg", UNREACHABLE_MESSAGE)
    summary = {
        "name": name,
        "groups": [group for group in groups or [] if group != FLEET_GROUP],
        "status": status,
        "phase": fleet_phase(rows),
        "duration_s": duration(started_at, finished_at),
        "failed_task": (failure or {}).get("task"),
        "message": message,
        "problems": problems if problems is not None else after.get("problems", []),
        "server": (after.get("server") or {}).get("version"),
        "rows_copied": sum(row["rows_copied"] or 0 for row in rows),
        "services": rows,
    }
    return {**summary, "verdict": verdict(summary)}


def verdict(summary: dict) -> str:
    """The one line the playbooks end with for a host: how it ended, how long it took, where its services are."""
    counts: dict[str, int] = {}
    for row in summary["services"]:
        counts[row["phase"]] = counts.get(row["phase"], 0) + 1
    order = [phase for phase in PHASES if phase in counts] + [phase for phase in counts if phase not in PHASES]
    phases = ", ".join(f"{counts[phase]} {phase}" for phase in order)
    took = f" in {summary['duration_s']:.1f} s" if summary["duration_s"] is not None else ""
    if summary["status"] == "failed":
        return f"{summary['name']}: FAILED at '{summary['failed_task']}'{took}; services: {phases or 'unknown'}"
    if summary["status"] == "unreachable":
        return f"{summary['name']}: UNREACHABLE: {summary['message']}"
    problems = len(summary["problems"])
    blocked = f"; {problems} problem(s) would stop an upgrade" if problems else ""
    return f"{summary['name']}: ok{took}; services: {phases}{blocked}"


def absent_host(name: str, groups: list[str] | None, active: bool) -> dict:
    """A host the report did not run on: unreachable when Ansible dropped it, else not reached yet (a later batch
    of the rollout)."""
    status = "not reached" if active else "unreachable"
    return {
        "name": name,
        "groups": [group for group in groups or [] if group != FLEET_GROUP],
        "status": status,
        "phase": UNKNOWN_PHASE,
        "duration_s": None,
        "failed_task": None,
        "message": UNREACHABLE_MESSAGE if status == "unreachable" else None,
        "problems": [],
        "server": None,
        "rows_copied": 0,
        "services": [],
    }


def fleet_report(
    title: str,
    run_id: str,
    written_at: str,
    directory: str,
    cwd: str,
    services: list[str],
    hosts: list[str],
    active: list[str],
    summaries: list[dict | None],
    groups: list[list[str] | None],
) -> dict:
    """The data of the report files. ``hosts``: every host of the play; ``active``: those Ansible still runs;
    ``summaries`` and ``groups``: per host of ``hosts``, its ``host_summary`` (empty when the report did not run on
    it) and its groups."""
    entries = [
        summary if summary else absent_host(name, host_groups, name in active)
        for name, summary, host_groups in zip(hosts, summaries, groups, strict=True)
    ]
    counted = [entry for entry in entries if entry["status"] in COUNTED_STATUSES]
    durations = [entry["duration_s"] for entry in entries if isinstance(entry["duration_s"], (int, float))]
    where = directory if directory.startswith("/") else f"{cwd}/{directory}"
    return {
        "title": title,
        "run_id": run_id,
        "written_at": written_at,
        "directory": re.sub("/[.]/", "/", where),
        "basename": f"lamassu-{title}-{run_id}",
        "services": list(services),
        "hosts": entries,
        "phase_counts": {
            phase: sum(1 for entry in counted if entry["phase"] == phase) for phase in (*PHASES, UNKNOWN_PHASE)
        },
        "failed": [entry["name"] for entry in entries if entry["status"] == "failed"],
        "unreachable": [entry["name"] for entry in entries if entry["status"] == "unreachable"],
        "not_reached": [entry["name"] for entry in entries if entry["status"] == "not reached"],
        "max_duration_s": max(durations, default=0) or 0,
    }
