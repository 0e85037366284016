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
APPLY = "apply"

PHASES = (PLAN, FREEZE, SNAPSHOT, DDL, DATA, VERIFY, FINAL, PUBLISH, DROP_SOURCE)
"""The phases of ``state: present``, in the order a run goes through them (``plan`` is where it starts)."""

ONLINE_PHASES = {
    "live": (PLAN, SNAPSHOT, DDL, DATA, VERIFY, FINAL, APPLY),
    "resume": (PLAN, APPLY),
    "switch": (PLAN, FREEZE, APPLY, VERIFY, FINAL, PUBLISH, DROP_SOURCE),
}
"""The phases of the online move (``online``): ``live`` copies from the slot's snapshot while the services run and
applies what they wrote since; ``resume`` is a live phase that finds its copy made (it applies); ``switch``, with
the source frozen, applies the rest, verifies what changed and the row counts, sets the sequences and publishes.
Same names, the online meaning: ``snapshot`` makes the slot, ``verify`` of the switch compares the changed rows."""

OPTIONAL = {FREEZE: "freeze_source", DROP_SOURCE: "drop_source"}
"""Phases that run only when the request's option of that name is true (the switch always freezes)."""

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
    PausePoint("apply", APPLY, "when a source transaction is applied, before its target transaction commits"),
)
PAUSE_POINT_NAMES = tuple(point.name for point in PAUSE_POINTS)


def runs(phase: str, request) -> bool:
    """Whether ``request`` goes through ``phase`` (the optional phases follow their option)."""
    if phase == FREEZE and request.online == "switch":
        return True
    option = OPTIONAL.get(phase)
    return option is None or bool(getattr(request, option))


def phases_of(request, resume: bool = False) -> tuple[str, ...]:
    """The phases a run goes through after ``plan``, in order."""
    if request.online == "off":
        order = PHASES
    else:
        order = ONLINE_PHASES["resume" if request.online == "live" and resume else request.online]
    return tuple(phase for phase in order[1:] if runs(phase, request))
