"""The rules that tell from the statistics counters whether a source changed after its copy."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.source_changes import compare, summary

RECORDED = {
    "stats_reset": None,
    "structure": "abc",
    "tables": {"certificates": [16384, 10, 2, 1], "goose_db_version": [16400, 5, 0, 0]},
}


def changed(**tables) -> dict:
    return {**RECORDED, "tables": {**RECORDED["tables"], **tables}}


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (RECORDED, []),
        (changed(certificates=[16384, 13, 2, 1]), ["table certificates: 3 inserts"]),
        (changed(certificates=[16384, 10, 3, 2]), ["table certificates: 1 updates, 1 deletes"]),
        (changed(certificates=[16999, 10, 2, 1]), ["table certificates was truncated or rewritten"]),
        (
            changed(certificates=[16384, 0, 0, 0]),
            ["the statistics of table certificates were reset, so they cannot prove that nothing changed"],
        ),
        (changed(extra=[17000, 0, 0, 0]), ["table extra was created"]),
        ({**RECORDED, "tables": {"certificates": [16384, 10, 2, 1]}}, ["table goose_db_version was dropped"]),
        ({**RECORDED, "structure": "def"}, ["the columns of the source tables changed"]),
    ],
)
def test_changes_by_table(current, expected):
    assert compare(RECORDED, current) == expected


def test_a_reset_of_the_database_statistics_proves_nothing():
    found = compare(RECORDED, {**RECORDED, "stats_reset": "2026-12-01 10:00:00+00"})
    assert len(found) == 1 and "cannot prove" in found[0] and "2026-12-01" in found[0]


def test_a_copy_recorded_without_statistics_cannot_tell():
    assert "cannot tell" in compare(None, RECORDED)[0]


def test_summary_shows_the_first_ten():
    text = summary([f"table t{i} was created" for i in range(12)])
    assert "t9" in text and "t10" not in text and text.endswith("and 2 more")
