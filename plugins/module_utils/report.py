# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the run report and the failure note say: plain data in, plain data out.

The filter plugins of the collection call these on the controller; the report templates only format the result.

* ``failure_message``: the message of a failed task (``ansible_failed_result``), naming each failed loop item;
* ``failure_fix``: the fix a failed task's module named (``fix``: ``option``, ``value``, ``why``);
* ``host_summary``: one host of the report, from the info results before and after the run and what the run did;
* ``fleet_report``: every host of the play, the hosts per phase, the run's details, what to do next
  (``report_runs.next_steps``) and the names for the files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ._compat import zip_strict
from .info_rules import PHASES
from .lamassu import MOVE_MODES
from .report_runs import next_steps, run_started_at

UNKNOWN_PHASE = "unknown"
# The status of a host, and whether its phase counts in the fleet summary.
COUNTED_STATUSES = ("ok", "failed")
FLEET_GROUP = "lamassu_postgres"
UNREACHABLE_MESSAGE = "Ansible could not reach the host"


def failure_message(result: dict) -> str:
    """``item: msg`` of each failed loop item, or the task's own message."""
    failed = [run for run in result.get("results") or [] if run.get("failed")]
    named = "; ".join(f"{run.get('item', run.get('schema'))}: {run.get('msg', 'failed')}" for run in failed)
    return named or result.get("msg", "failed without a message")


def failure_fix(result: dict) -> dict:
    """The ``fix`` of the first failed loop item that has one, else the task's own (empty: no fix named)."""
    fixes = [run["fix"] for run in result.get("results") or [] if run.get("failed") and run.get("fix")]
    return fixes[0] if fixes else result.get("fix") or {}


def migrated_by_this_run(migrations: list[dict], check_mode: bool) -> set[str]:
    """Services whose migrate run of this play left nothing pending (the info module cannot see the migration
    files, which stay on the controller): they are migrated even when there was nothing to apply. In check mode
    what would be applied is not applied."""
    return {
        item_name(run)
        for run in migrations
        if run.get("pending") is not None
        and not run["pending"]
        and not run.get("failed", False)
        and (not run.get("applied") or not check_mode)
    }


def service_rows(
    after: dict, before: dict, services: list[str], at_head: set[str], runs: dict[str, dict] | None = None
) -> list[dict]:
    """Per service: phase and goose version before and after, the copy, and from ``runs`` (``service_runs``) what
    this run copied and migrated and the failure of the service."""
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
                "dsn": (now.get("dsn") or {}).get("pgx"),
                **(runs or {}).get(name, NOT_RUN),
            }
        )
    return rows


# What a service's row says when this run neither copied nor migrated it.
NOT_RUN = {"tables": None, "mb_copied": None, "mb_per_s": None, "migrations": [], "failure": None, "fix": None}


def item_name(result: dict):
    """The service of a loop result, or of a schema's entry in the migrate module's ``results`` (``schema``); a
    copy waited for asynchronously holds its service one level deeper."""
    item = result.get("item", result.get("schema"))
    return item.get("item") if isinstance(item, dict) else item


def service_runs(
    copies: list[dict], migrations: list[dict], fix_variables: Mapping[str, str] | None = None
) -> dict[str, dict]:
    """Per service what this run did: tables and MB copied (a copy made by an earlier run is not counted), MB/s,
    the migrations applied (or planned, in check mode) with their duration, and the message and fix (``playbook_fix``
    with ``fix_variables``) of a failed copy or migrate run."""
    runs: dict[str, dict] = {}
    for result in [*copies, *migrations]:
        name = item_name(result)
        if name is None or result.get("skipped"):
            continue
        run = runs.setdefault(name, dict(NOT_RUN, migrations=[]))
        if result.get("failed"):
            run["failure"] = result.get("msg", "failed without a message")
            run["fix"] = playbook_fix(result.get("fix"), fix_variables or {})
        if "tables" in result and result.get("changed"):
            megabytes = sum(table.get("bytes") or 0 for table in result["tables"]) / 1e6
            seconds = result.get("duration_s") or 0
            run.update(
                tables=len(result["tables"]),
                mb_copied=round(megabytes, 1),
                mb_per_s=round(megabytes / seconds, 1) if seconds > 0 else None,
            )
        run["migrations"] += [
            {"version": m.get("version"), "name": m.get("name"), "duration_ms": m.get("duration_ms")}
            for m in result.get("applied") or []
        ]
    return runs


def playbook_fix(fix: dict | None, variables: Mapping[str, str]) -> dict | None:
    """A module's ``fix`` (``option``, ``value``, ``why``) as the playbook variable that sets the option
    (``variables``: option -> variable, given by the report role): ``variable``, ``value`` as written on the command
    line, ``why`` and ``setting`` (``-e variable=value``, else ``option=value``). None: no fix."""
    if not isinstance(fix, Mapping) or not fix:
        return None
    value = str(fix["value"]).lower() if isinstance(fix["value"], bool) else str(fix["value"])
    variable = variables.get(fix["option"])
    setting = f"-e {variable}={value}" if variable else f"{fix['option']}={value}"
    return {"variable": variable, "value": value, "why": fix.get("why"), "setting": setting}


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


# The steps of an upgrade, in order; the playbook notes when each ends (report_steps): per move mode, as upgrade.yml
# runs them (online: the copy while the services run, then its short switch).
STEPS = {
    "offline": ("preflight", "stop", "copy", "migrate", "cutover", "start"),
    "online": ("preflight", "live", "stop", "switch", "migrate", "cutover", "start"),
}
# The steps while the services are stopped: from the stop until they may start (the login check, in cutover, done).
STOPPED_STEPS = ("stop", "copy", "switch", "migrate", "cutover")


def step_durations(
    marks: list, started_at: float | str | None, finished_at: float | str | None, failed: bool, mode: str = "offline"
) -> list[dict]:
    """Seconds per step from ``marks`` (``[step, epoch seconds]`` at the end of each step): the time after the last
    mark is the step that failed (in the order of ``mode``), else "finish" (starting the services when asked, the
    lock, the report)."""
    if started_at is None or finished_at is None:
        return []
    steps, last = [], float(started_at)
    for name, at in marks:
        steps.append({"name": name, "seconds": round(float(at) - last, 2)})
        last = float(at)
    done = [step["name"] for step in steps]
    rest = next((name for name in STEPS[mode] if name not in done), "finish") if failed else "finish"
    if marks:
        steps.append({"name": rest, "seconds": round(float(finished_at) - last, 2)})
    return steps


def stop_window(steps: list[dict], mode: str) -> dict:
    """How the host moved and how long its services were stopped (None when the run did not stop them)."""
    stopped = [step["seconds"] for step in steps if step["name"] in STOPPED_STEPS]
    has_stop = any(step["name"] == "stop" for step in steps)
    return {"move_mode": mode, "stop_window_s": round(sum(stopped), 1) if has_stop else None}


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
    copies: list[dict] | None = None,
    steps: list | None = None,
    fix_variables: Mapping[str, str] | None = None,
    move_mode: str | None = None,
) -> dict:
    """One host of the report. ``after``: the info result the report read (failed when the server could not be
    read); ``before``: an info result of before the run (empty: ``after``); ``copies`` and ``migrations``: the
    results of the copy and migrate runs; ``failure``: ``task``, ``msg`` and ``fix`` of the failure of the run;
    ``problems``: the preflight's (None: those of ``after``); ``steps``: ``[step, epoch seconds]`` at the end of each
    step; ``fix_variables``: the playbook variable of each module option a fix names; ``move_mode``: the run's
    (``lamassu_move_mode``; None: offline)."""
    mode = move_mode or MOVE_MODES[0]
    runs = service_runs(copies or [], migrations or [], fix_variables)
    rows = service_rows(after, before or after, services, migrated_by_this_run(migrations or [], check_mode), runs)
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
        "steps": step_durations(steps or [], started_at, finished_at, status == "failed", mode),
        "failed_task": (failure or {}).get("task"),
        "message": message,
        "fix": playbook_fix((failure or {}).get("fix"), fix_variables or {}) if status == "failed" else None,
        "problems": problems if problems is not None else after.get("problems", []),
        "server": (after.get("server") or {}).get("version"),
        "rows_copied": sum(row["rows_copied"] or 0 for row in rows),
        "with_before": bool(before),
        "services": rows,
    }
    summary.update(stop_window(summary["steps"], mode))
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
    window = summary.get("stop_window_s")
    stopped = f" ({summary['move_mode']} move, services stopped {window:.1f} s)" if window is not None else ""
    return f"{summary['name']}: ok{took}{stopped}; services: {phases}{blocked}"


def status_verdict(info: dict, login_problems: list[str]) -> str:
    """What fails a host in status.yml: it cannot be read, or has problems that would stop an upgrade (those of the
    info module and of the services' own logins); empty when none."""
    if "phases" not in info:
        return f"cannot be read: {info.get('msg') or 'no answer'}"
    problems = [*info.get("problems", []), *login_problems]
    return f"problems: {' | '.join(problems)}" if problems else ""


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
        "steps": [],
        "failed_task": None,
        "message": UNREACHABLE_MESSAGE if status == "unreachable" else None,
        "fix": None,
        "problems": [],
        "server": None,
        "rows_copied": 0,
        "with_before": False,
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
    inventory: list[str] | None = None,
    check_mode: bool = False,
    versions: dict | None = None,
) -> dict:
    """The data of the report files. ``hosts``: every host of the play; ``active``: those Ansible still runs;
    ``summaries`` and ``groups``: per host of ``hosts``, its ``host_summary`` (empty when the report did not run on
    it) and its groups; ``inventory``: the inventory sources of the run; ``versions``: ``collection`` and
    ``ansible_core``."""
    entries = [
        summary if summary else absent_host(name, host_groups, name in active)
        for name, summary, host_groups in zip_strict(hosts, summaries, groups)
    ]
    counted = [entry for entry in entries if entry["status"] in COUNTED_STATUSES]
    durations = [entry["duration_s"] for entry in entries if isinstance(entry["duration_s"], (int, float))]
    where = directory if directory.startswith("/") else f"{cwd}/{directory}"
    report = {
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
        "with_before": any(entry.get("with_before") for entry in entries),
        "run": {
            "started_at": run_started_at(run_id),
            "finished_at": written_at,
            "check_mode": check_mode,
            "inventory": list(inventory or []),
            "collection_version": (versions or {}).get("collection"),
            "ansible_core_version": (versions or {}).get("ansible_core"),
        },
    }
    return {**report, "next": next_steps(report)}
