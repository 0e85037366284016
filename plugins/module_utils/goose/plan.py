# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning: migration files + version-table rows -> the steps a command runs.

Nothing here touches a database. The rules are those of goose v3's Provider
(``provider_run.go``): the current version is the highest applied version;
``down`` walks the history in insertion order; unapplied files older than the
current version are "missing" and refused unless ``allow_missing``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import Fix, InvalidInput
from .source import MigrationSource
from .store import History, HistoryRow

UP = "up"
DOWN = "down"
COMMANDS = ("up", "up-by-one", "up-to", "down", "down-to", "redo", "reset", "status", "version")
READ_ONLY_COMMANDS = frozenset({"status", "version"})
# goose's math.MaxInt64: "up" means "up to the newest file".
MAX_VERSION = 2**63 - 1


@dataclass(frozen=True)
class Step:
    """One migration to run in one direction."""

    source: MigrationSource
    direction: str


@dataclass(frozen=True)
class Plan:
    """What a command will do: the ordered steps and the history it leads to."""

    command: str
    steps: tuple[Step, ...]
    before: History
    after: History


def history_after(history: History, steps: Sequence[Step]) -> History:
    """The history once ``steps`` ran: up inserts a row, down deletes every row of the version."""
    rows = list(history.rows)
    next_id = max((row.id for row in rows), default=0) + 1
    for step in steps:
        if step.direction == UP:
            rows.append(HistoryRow(next_id, step.source.version, True, None))
            next_id += 1
        else:
            rows = [row for row in rows if row.version != step.source.version]
    return History(tuple(rows))


def missing_migrations(migrations: Sequence[MigrationSource], history: History) -> list[MigrationSource]:
    """goose's "missing" migrations: files never applied whose version is below the current version."""
    applied = history.applied_versions()
    current = history.current_version
    return [m for m in migrations if m.version not in applied and m.version < current]


def _resolve_up(
    migrations: Sequence[MigrationSource], history: History, target: int, allow_missing: bool
) -> list[MigrationSource]:
    missing = missing_migrations(migrations, history)
    current = history.current_version
    if missing and not allow_missing:
        versions = ",".join(str(m.version) for m in missing)
        noun = "migrations" if len(missing) > 1 else "migration"
        raise InvalidInput(
            f"found {len(missing)} missing (out-of-order) {noun} lower than current max ({current}): [{versions}]; "
            "nothing was applied. Set allow_missing to apply them (goose's --allow-missing).",
            fix=Fix(
                "allow_missing",
                True,
                "applies the missing migrations before the newer ones, as goose's --allow-missing",
            ),
        )
    applied = history.applied_versions()
    # goose applies every missing migration first, whatever the target, then the new ones up to the target.
    newer = [m for m in migrations if m.version not in applied and current < m.version <= target]
    return [*missing, *newer]


def _resolve_down(migrations: Sequence[MigrationSource], history: History, target: int) -> list[MigrationSource]:
    """Roll back in insertion order (newest first), stopping at the first version at or below ``target``."""
    by_version = {m.version: m for m in migrations}
    chosen: list[MigrationSource] = []
    for row in reversed(history.applied_rows()):
        if row.version <= target:
            break
        source = by_version.get(row.version)
        if source is None:
            raise InvalidInput(
                f"version {row.version} is recorded as applied but no file of that version is in the "
                "migrations directory, so it cannot be rolled back; nothing was rolled back."
            )
        chosen.append(source)
    return chosen


def _require_version(command: str, version: int | None, minimum: int) -> int:
    if version is None:
        raise InvalidInput(f"command {command} needs the version parameter")
    if version < minimum:
        raise InvalidInput(f"command {command}: version must be at least {minimum}, got {version}")
    return version


def plan_command(
    command: str,
    migrations: Sequence[MigrationSource],
    history: History,
    version: int | None = None,
    allow_missing: bool = False,
) -> Plan:
    """The steps of ``command`` for these files and this history; raises InvalidInput when goose would refuse."""
    if command not in COMMANDS:
        raise InvalidInput(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
    steps: list[Step] = []
    if command in ("up", "up-by-one", "up-to"):
        target = _require_version(command, version, 1) if command == "up-to" else MAX_VERSION
        chosen = _resolve_up(migrations, history, target, allow_missing)
        if command == "up-by-one":
            chosen = chosen[:1]
        steps = [Step(source, UP) for source in chosen]
    elif command in ("down", "down-to", "reset"):
        target = _require_version(command, version, 0) if command == "down-to" else 0
        chosen = _resolve_down(migrations, history, target)
        if command == "down":
            chosen = chosen[:1]
        steps = [Step(source, DOWN) for source in chosen]
    elif command == "redo":
        last = _resolve_down(migrations, history, 0)[:1]
        steps = [Step(source, direction) for source in last for direction in (DOWN, UP)]
    return Plan(command, tuple(steps), history, history_after(history, steps))


def go_without_port(steps: Sequence[Step]) -> list[MigrationSource]:
    """Go migrations the plan would run; they have no Python port, so this module cannot run them."""
    seen: dict[int, MigrationSource] = {}
    for step in steps:
        if step.source.kind == "go":
            seen.setdefault(step.source.version, step.source)
    return list(seen.values())


def status_entries(migrations: Sequence[MigrationSource], history: History) -> list[dict]:
    """The ``migrations`` view: every file and every applied version whose file is gone, by version.

    ``state`` is ``applied``, ``pending``, ``missing`` (never applied and older than
    the current version: goose's out-of-order "missing") or ``gone`` (applied, no file).
    """
    latest = history.latest_rows()
    applied = history.applied_versions()
    current = history.current_version
    entries: dict[int, dict] = {}
    for m in migrations:
        row = latest.get(m.version) if m.version in applied else None
        if row is not None:
            state = "applied"
        elif m.version < current:
            state = "missing"
        else:
            state = "pending"
        entries[m.version] = {
            "version": m.version,
            "name": m.name,
            "kind": m.kind,
            "path": m.path,
            "applied": row is not None,
            "applied_at": row.tstamp.isoformat(sep=" ") if row is not None and row.tstamp else None,
            "state": state,
        }
    for version in applied - entries.keys():
        row = latest[version]
        entries[version] = {
            "version": version,
            "name": None,
            "kind": None,
            "path": None,
            "applied": True,
            "applied_at": row.tstamp.isoformat(sep=" ") if row.tstamp else None,
            "state": "gone",
        }
    return [entries[v] for v in sorted(entries)]


def pending_entries(migrations: Sequence[MigrationSource], history: History) -> list[dict]:
    applied = history.applied_versions()
    return [{"version": m.version, "name": m.name, "kind": m.kind} for m in migrations if m.version not in applied]


def older_api_disagreement(history: History) -> str | None:
    """A warning when goose's older API (Lamassu's CLI) would read another current version than the Provider."""
    provider, older = history.current_version, history.older_api_version
    if provider == older:
        return None
    return (
        f"out-of-order history: the highest applied version is {provider} (goose Provider, this module) but "
        f"goose's older API, which Lamassu's own migration tool uses, reads {older} (the last applied by "
        "insertion order); the two tools disagree on the current version of this schema"
    )
