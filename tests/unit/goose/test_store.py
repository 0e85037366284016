"""goose/ and dbcopy/ read a version table the same way (goose/store.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.catalog import read_goose_version
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.store import VersionStore
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import GOOSE_TABLE


class FakeSession:
    """Answers the existence query and the row query of goose/store.py."""

    def __init__(self, rows):
        self.rows = rows

    def fetch_value(self, query, params=None):
        return self.rows is not None

    def fetch_all(self, query, params=None):
        return [(*row, None) for row in self.rows]


ROLLED_BACK_NEWEST = [(1, 0, True), (2, 5, True), (3, 9, True), (4, 9, False)]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([(1, 0, True)], 0),
        ([], 0),
        ([(1, 0, True), (2, 5, True), (3, 3, True)], 5),
        # The latest row of version 9 rolled it back: goose's Provider reads 5 (max(version_id) would say 9).
        (ROLLED_BACK_NEWEST, 5),
    ],
)
def test_copy_and_migrate_read_the_same_current_version(rows, expected):
    catalog = SimpleNamespace(schema="public", tables=[SimpleNamespace(name=GOOSE_TABLE)])
    assert read_goose_version(FakeSession(rows), catalog) == expected
    assert VersionStore(FakeSession(rows), "public", GOOSE_TABLE).read().current_version == expected


def test_no_goose_table_has_no_version():
    catalog = SimpleNamespace(schema="public", tables=[])
    assert read_goose_version(FakeSession(None), catalog) is None
    assert VersionStore(FakeSession(None), "public", GOOSE_TABLE).read().rows == ()
