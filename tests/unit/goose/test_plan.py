"""Pure planning rules, table-driven: goose v3 Provider semantics and the older API's reading."""

from __future__ import annotations

from datetime import datetime

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.plan import (
    DOWN,
    UP,
    go_without_port,
    missing_migrations,
    older_api_disagreement,
    pending_entries,
    plan_command,
    status_entries,
)
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.source import MigrationSource
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.store import History, HistoryRow


def files(*versions: int, go: tuple[int, ...] = ()) -> list[MigrationSource]:
    out = []
    for v in versions:
        kind = "go" if v in go else "sql"
        name = f"{v:05d}_m.{kind}"
        out.append(MigrationSource(version=v, name=name, path=f"/m/{name}", kind=kind))
    return out


def history(*versions: int | tuple[int, bool]) -> History:
    """Rows in insertion order; version 0 first like goose's ensureVersionTable."""
    rows = []
    for index, item in enumerate((0, *versions), start=1):
        version, applied = item if isinstance(item, tuple) else (item, True)
        rows.append(HistoryRow(index, version, applied, datetime(2026, 1, 1, 0, 0, index)))
    return History(tuple(rows))


def planned(plan) -> list[tuple[int, str]]:
    return [(step.source.version, step.direction) for step in plan.steps]


@pytest.mark.parametrize(
    ("rows", "provider", "older_api"),
    [
        ((), 0, 0),
        ((1, 2, 3), 3, 3),
        ((1, 4, 2, 3), 4, 3),  # allow-missing history: Provider takes the max, the older API the last inserted
        ((1, 2, (2, False)), 1, 1),  # old goose wrote is_applied=false rows on down
        ((1, 3, (3, False), 2), 2, 2),
        ((1, 5, 2, (2, False)), 5, 5),  # older API skips the rolled back 2 and meets 5
        ((1, (1, False)), 0, 0),
    ],
)
def test_current_version_readings(rows, provider, older_api):
    h = history(*rows)
    assert h.current_version == provider
    assert h.older_api_version == older_api
    assert (older_api_disagreement(h) is None) == (provider == older_api)


def test_disagreement_message_names_both_versions():
    message = older_api_disagreement(history(1, 4, 2))
    assert "4" in message and "reads 2" in message and "older API" in message


@pytest.mark.parametrize(
    ("command", "version", "files_", "rows", "allow_missing", "expected"),
    [
        ("up", None, (1, 2, 3), (), False, [(1, UP), (2, UP), (3, UP)]),
        ("up", None, (1, 2, 3), (1, 2, 3), False, []),
        ("up", None, (1, 2, 3), (1,), False, [(2, UP), (3, UP)]),
        ("up-by-one", None, (1, 2, 3), (1,), False, [(2, UP)]),
        ("up-by-one", None, (1, 2), (1, 2), False, []),
        ("up-to", 2, (1, 2, 3), (), False, [(1, UP), (2, UP)]),
        ("up-to", 5, (1, 2, 3), (1,), False, [(2, UP), (3, UP)]),
        ("up-to", 1, (1, 2, 3), (1, 2), False, []),
        # allow-missing: the missing ones first, then the new ones up to the target (goose's order)
        ("up", None, (1, 2, 3, 4, 5), (1, 4), True, [(2, UP), (3, UP), (5, UP)]),
        ("up-by-one", None, (1, 2, 3, 4, 5), (1, 4), True, [(2, UP)]),
        # goose quirk: missing ones are applied even above an up-to target below the current version
        ("up-to", 2, (1, 2, 3, 4, 5), (1, 4), True, [(2, UP), (3, UP)]),
        ("down", None, (1, 2, 3), (1, 2, 3), False, [(3, DOWN)]),
        ("down", None, (1, 2, 3), (), False, []),
        # down follows insertion order, not version order
        ("down", None, (1, 2, 3, 4), (1, 4, 2), False, [(2, DOWN)]),
        ("down-to", 1, (1, 2, 3), (1, 2, 3), False, [(3, DOWN), (2, DOWN)]),
        ("down-to", 0, (1, 2, 3), (1, 2, 3), False, [(3, DOWN), (2, DOWN), (1, DOWN)]),
        ("down-to", 3, (1, 2, 3), (1, 2, 3), False, []),
        # goose quirk: down-to stops at the first row at or below the target, in insertion order
        ("down-to", 2, (1, 2, 3, 4), (1, 4, 2, 3), False, [(3, DOWN)]),
        ("reset", None, (1, 2, 3), (1, 3, 2), False, [(2, DOWN), (3, DOWN), (1, DOWN)]),
        ("redo", None, (1, 2, 3), (1, 2), False, [(2, DOWN), (2, UP)]),
        ("redo", None, (1, 2), (), False, []),
        ("status", None, (1, 2), (1,), False, []),
        ("version", None, (1, 2), (1,), False, []),
        # rows whose latest state is "rolled back" are not applied
        ("up", None, (1, 2), (1, 2, (2, False)), False, [(2, UP)]),
        ("down", None, (1, 2), (1, 2, (2, False)), False, [(1, DOWN)]),
    ],
)
def test_plan_command(command, version, files_, rows, allow_missing, expected):
    plan = plan_command(command, files(*files_), history(*rows), version, allow_missing)
    assert planned(plan) == expected


@pytest.mark.parametrize(
    ("command", "version", "rows", "message"),
    [
        ("up", None, (1, 4), "found 2 missing (out-of-order) migrations lower than current max (4): [2,3]"),
        ("up-by-one", None, (1, 3), "found 1 missing (out-of-order) migration lower than current max (3): [2]"),
        ("up-to", 5, (1, 3), "found 1 missing (out-of-order) migration"),
        ("up-to", None, (), "needs the version parameter"),
        ("up-to", 0, (), "at least 1"),
        ("down-to", None, (1,), "needs the version parameter"),
        ("down-to", -1, (1,), "at least 0"),
        ("down", None, (1, 9), "version 9 is recorded as applied but no file"),
        ("redo", None, (1, 9), "version 9 is recorded as applied but no file"),
        ("sideways", None, (), "unknown command"),
    ],
)
def test_plan_refusals(command, version, rows, message):
    with pytest.raises(InvalidInput) as failure:
        plan_command(command, files(1, 2, 3, 4, 5), history(*rows), version)
    assert message in str(failure.value)


def test_applied_versions_without_file_do_not_block_up_and_count_for_the_current_version():
    plan = plan_command("up", files(1, 2, 10), history(1, 2, 7))
    assert planned(plan) == [(10, UP)]
    assert plan.before.current_version == 7 and plan.after.current_version == 10


def test_history_after_steps():
    plan = plan_command("redo", files(1, 2), history(1, 2))
    assert [(r.version, r.is_applied) for r in plan.after.rows] == [(0, True), (1, True), (2, True)]
    assert plan.after.rows[-1].tstamp is None
    plan = plan_command("reset", files(1, 2), history(1, 2))
    assert [r.version for r in plan.after.rows] == [0]


def test_missing_migrations():
    assert [m.version for m in missing_migrations(files(1, 2, 3, 4, 5), history(1, 4))] == [2, 3]
    assert missing_migrations(files(1, 2), history()) == []


def test_go_without_port_lists_each_go_migration_of_the_plan_once():
    sources = files(1, 2, 3, 4, go=(2, 4))
    plan = plan_command("up", sources, history())
    assert [m.version for m in go_without_port(plan.steps)] == [2, 4]
    plan = plan_command("up-to", sources, history(), 1)
    assert go_without_port(plan.steps) == []
    plan = plan_command("redo", sources, history(1, 2))
    assert [m.version for m in go_without_port(plan.steps)] == [2]


def test_status_entries_states():
    entries = status_entries(files(1, 2, 3, 5), history(1, 3, 4))
    assert [(e["version"], e["state"], e["applied"]) for e in entries] == [
        (1, "applied", True),
        (2, "missing", False),
        (3, "applied", True),
        (4, "gone", True),
        (5, "pending", False),
    ]
    assert entries[0]["applied_at"] == "2026-01-01 00:00:02"
    assert entries[3]["name"] is None and entries[3]["kind"] is None
    assert entries[1]["applied_at"] is None


def test_pending_entries():
    assert pending_entries(files(1, 2, 3), history(2)) == [
        {"version": 1, "name": "00001_m.sql", "kind": "sql"},
        {"version": 3, "name": "00003_m.sql", "kind": "sql"},
    ]
