# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The phases of a copy and the points where a test can pause it: the one ordered definition.

The engine runs ``PHASES`` in order (the real run and the check-mode rehearsal walk the same list), ``job.phase``
names the phase a failure happened in, the progress file shows it, and the table in ``docs/db_to_schema.md``
lists it (a unit test compares them). A pause point is a moment inside a phase: ``verify`` fires in the data
phase, where each table is measured, before the ``verify`` phase compares the measurements; ``copy`` and
``index`` are moments of the data phase, not phases.
"""

from __future__ import annotations

from typing import NamedTuple

PLAN = "plan"
FREEZE = "freeze"
SNAPSHOT = "snapshot"
DDL = "ddl"
DATA = "data"
VERIFY = "verify"
FINAL = "final"
PUBLISH = "publish"
DROP_SOURCE = "drop_source"

PHASES = (PLAN, FREEZE, SNAPSHOT, DDL, DATA, VERIFY, FINAL, PUBLISH, DROP_SOURCE)
"""The phases of ``state: present``, in the order a run goes through them (``plan`` is where it starts)."""

OPTIONAL = {FREEZE: "freeze_source", DROP_SOURCE: "drop_source"}
"""Phases that run only when the request's option of that name is true."""

DONE = "done"
FAILED = "failed"
"""What the progress file shows once the run is over."""

COMPARE = "compare"
"""Not in the order above: measuring a published copy before it is removed or replaced."""


class PausePoint(NamedTuple):
    name: str  # the value of LAMASSU_DBCOPY_PAUSE_AT
    phase: str  # the phase it fires in
    when: str


PAUSE_POINTS = (
    PausePoint("ddl", DDL, "before the staging schema is built"),
    PausePoint("data", DATA, "before the first table"),
    PausePoint("copy", DATA, "in the middle of the first table's COPY stream, both COPY commands running"),
    PausePoint("index", DATA, "right after a table's first index is built, its transaction still open"),
    PausePoint("verify", DATA, "when a table is loaded, before it is measured for verification"),
    PausePoint("final", FINAL, "before the constraints, views, owners and grants"),
    PausePoint("publish", PUBLISH, "before the publishing transaction commits"),
)
PAUSE_POINT_NAMES = tuple(point.name for point in PAUSE_POINTS)


def runs(phase: str, request) -> bool:
    """Whether ``request`` goes through ``phase`` (the optional phases follow their option)."""
    option = OPTIONAL.get(phase)
    return option is None or bool(getattr(request, option))
