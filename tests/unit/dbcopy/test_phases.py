"""The copy's phases and pause points are defined once (phases.py); the docs table follows that definition."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.hooks import Hooks
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.phases import (
    DATA,
    ONLINE_PHASES,
    PAUSE_POINTS,
    PHASES,
    phases_of,
    runs,
)

DOCS = Path(__file__).resolve().parents[3] / "docs" / "db_to_schema.md"


def docs_section(title: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_docs_phase_table_lists_the_phases_in_order():
    rows = re.findall(r"^\| ([a-z_]+)(?: \([a-z]+\))? \|", docs_section("Phases"), re.MULTILINE)
    rows = [name for name in rows if name != "phase"]  # the header
    assert list(dict.fromkeys(rows)) == list(PHASES)


def test_docs_name_every_pause_point_in_order():
    text = DOCS.read_text(encoding="utf-8")
    hook = text.split("LAMASSU_DBCOPY_PAUSE_AT=<point>` (", 1)[1].split(") and", 1)[0]
    assert re.findall(r"`([a-z_]+)`", hook) == [point.name for point in PAUSE_POINTS]


def test_each_pause_point_fires_in_a_phase():
    online = {phase for order in ONLINE_PHASES.values() for phase in order}
    assert all(point.phase in PHASES or point.phase in online for point in PAUSE_POINTS)
    # "copy", "index" and "verify" are moments of the data phase: "verify" measures, the verify phase compares.
    assert [p.name for p in PAUSE_POINTS if p.phase == DATA] == ["data", "copy", "index", "verify"]


class _Request:
    freeze_source = False
    drop_source = True
    online = "off"


class _Online(_Request):
    def __init__(self, online: str):
        self.online = online


def test_the_online_phases():
    assert phases_of(_Online("live")) == ("snapshot", "ddl", "data", "verify", "final", "apply")
    assert phases_of(_Online("live"), resume=True) == ("apply",)
    # The switch always freezes the source; drop_source follows its option.
    assert phases_of(_Online("switch")) == ("freeze", "apply", "verify", "final", "publish", "drop_source")
    assert phases_of(_Request()) == ("snapshot", "ddl", "data", "verify", "final", "publish", "drop_source")


@pytest.mark.parametrize(("phase", "expected"), [("freeze", False), ("drop_source", True), ("data", True)])
def test_optional_phases_follow_their_option(phase, expected):
    assert runs(phase, _Request()) is expected


def test_pause_at_an_unknown_point_is_a_bug():
    with pytest.raises(ValueError):
        Hooks().pause("nowhere")
