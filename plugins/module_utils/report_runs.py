# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runs of a report directory and what to do after one: plain data in, plain data out.

* ``next_steps``: what to do next for a fleet report (``report.fleet_report``), each with its command;
* ``run_started_at``: the start of a run, from its id;
* ``is_run_report`` and ``run_index``: the ``.json`` files of a report directory and its index page, newest first
  (the action ``lamassu_report_files``).
"""

from __future__ import annotations

import datetime


def run_started_at(run_id: str) -> str | None:
    """The start of the run, which its id names (the start of ansible-playbook: lookup controller, plugin_utils/run_id.py); None for an id given otherwise."""
    try:
        return datetime.datetime.strptime(run_id, RUN_ID_FORMAT).strftime(TIME_FORMAT)
    except ValueError:
        return None


RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PLAYBOOK_COMMAND = "ansible-playbook lamassuiot.postgres.{playbook}{inventory}{limit}"


def next_steps(report: dict) -> list[str]:
    """What to do next for this fleet, one sentence each, with the command to run."""
    inventory = "".join(f" -i {source}" for source in report["run"]["inventory"])

    def command(playbook: str, hosts: list[str] = ()) -> str:
        limit = f" --limit {','.join(hosts)}" if hosts else ""
        return PLAYBOOK_COMMAND.format(playbook=playbook, inventory=inventory, limit=limit)

    title, steps = report["title"], []
    rerun = title if title in ("upgrade", "rollback", "cleanup") else "upgrade"
    if report["run"]["check_mode"]:
        steps.append(f"This was a check run and changed nothing; to make the changes: {command(title)}")
    if report["failed"]:
        steps.append(
            f"Fix what failed on {', '.join(report['failed'])} (see Failures), then run again: "
            f"{command(rerun, report['failed'])}"
        )
        if title == "upgrade":
            steps.append(f"Or go back to the legacy databases: {command('rollback', report['failed'])}")
    if report["unreachable"]:
        steps.append(
            f"Make {', '.join(report['unreachable'])} reachable, then run again: "
            f"{command(rerun, report['unreachable'])}"
        )
    if report["not_reached"]:
        steps.append(f"The rollout stopped before {', '.join(report['not_reached'])}; to go on: {command(rerun)}")
    if steps:
        return steps
    counts = report["phase_counts"]
    if counts["legacy"]:
        return [f"Services are still on their legacy databases: {command('upgrade')}"]
    if counts["copied"]:
        return [
            f"Copied, not migrated: give the migrations of the Lamassu release (-e lamassu_migrations_dir=...) "
            f"and run: {command('upgrade')}"
        ]
    if counts["migrated"]:
        return [
            "Start the services on their schemas (the connection strings are in each host's table) and check "
            f"them; then drop the legacy databases: {command('cleanup')}"
        ]
    if counts["cleaned"]:
        return ["Nothing left to do: every service runs from its schema and the legacy databases are gone."]
    return []


RUN_REPORT_KEYS = ("title", "run_id", "written_at", "basename", "hosts")


def is_run_report(data) -> bool:
    """Whether ``data`` (a ``.json`` file of a report directory) is what ``fleet_report`` wrote."""
    return (
        isinstance(data, dict)
        and all(key in data for key in RUN_REPORT_KEYS)
        and isinstance(data["hosts"], list)
        and all(isinstance(host, dict) and "name" in host and "status" in host for host in data["hosts"])
    )


def run_index(reports: list[dict]) -> list[dict]:
    """The runs of a report directory for its index page, newest first: per run its title, id, times, files and
    per host the verdict. ``reports``: the data of each run (the ``.json`` file beside its ``.md`` and ``.html``)."""
    runs = [
        {
            "title": report["title"],
            "run_id": report["run_id"],
            "started_at": (report.get("run") or {}).get("started_at"),
            "written_at": report["written_at"],
            "check_mode": (report.get("run") or {}).get("check_mode", False),
            "html": f"{report['basename']}.html",
            "md": f"{report['basename']}.md",
            "hosts": [
                {"name": host["name"], "status": host["status"], "verdict": host.get("verdict") or host["status"]}
                for host in report["hosts"]
            ],
        }
        for report in reports
    ]
    return sorted(runs, key=lambda run: (run["written_at"], run["run_id"], run["title"]), reverse=True)
