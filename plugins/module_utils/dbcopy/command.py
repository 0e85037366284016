# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's one call: its parameters become copy requests (one copy, or one per service of ``services``),
the copies run, and the diff is made from their results, in the shape of ``goose/command.py``."""

from __future__ import annotations

from typing import Callable, Mapping

from ..connection import ConnectionParams
from .access import given_roles
from .engine import run_copies, run_copy
from .request import CopyRequest

# The options every copy of a run shares; the list form sets source_database and target_schema per service.
SHARED = (
    "source_schema",
    "target_database",
    "state",
    "jobs",
    "verify",
    "freeze_source",
    "if_target_exists",
    "drop_source",
    "discard_changes",
    "accept_source_changes",
    "owner",
    "online",
)


def _requests(module_params: Mapping) -> list[CopyRequest]:
    shared = {key: module_params[key] for key in SHARED}
    services = module_params.get("services")
    if services is None:
        target = module_params["target_schema"] or module_params["source_database"]
        return [
            CopyRequest(
                source_database=module_params["source_database"],
                target_schema=module_params["target_schema"],
                service_role=given_roles(module_params["service_role"], [target]).get(target),
                **shared,
            )
        ]
    roles = given_roles(module_params["service_role"], services)
    return [
        CopyRequest(
            source_database=module_params["source_prefix"] + service,
            target_schema=service,
            service_role=roles.get(service),
            **shared,
        )
        for service in services
    ]


def _after(result: dict, state: str) -> dict:
    """The copy and its source as the run leaves them (check mode: as a real run would)."""
    return {
        "copied": state == "present",
        "source_frozen": result["source"]["frozen"],
        "source_dropped": result["source"]["dropped"],
    }


def _diff(results: list[dict], several: bool, state: str) -> dict:
    def states(pick: Callable[[dict], dict]) -> dict:
        if several:
            return {"schemas": {r["schema"]: pick(r) for r in results}}
        return pick(results[0])

    return {"before": states(lambda r: r["before"]), "after": states(lambda r: _after(r, state))}


def run_module_params(
    params: ConnectionParams,
    module_params: Mapping,
    check_mode: bool,
    diff: bool,
    log: Callable[[str], None] | None = None,
) -> dict:
    """One copy (the single form's returns) or ``services`` (``results`` per target schema)."""
    several = module_params.get("services") is not None
    requests = _requests(module_params)
    if several:
        result = run_copies(params, requests, check_mode, log=log)
        results = result["results"]
    else:
        result = run_copy(params, requests[0], check_mode, log=log, progress_file=module_params["progress_file"])
        results = [result]
    if diff:
        result["diff"] = _diff(results, several, module_params["state"])
    return result
