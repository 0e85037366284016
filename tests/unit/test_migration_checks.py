"""The record of a migrate run that left nothing pending: the tree's digest and the statements that write it."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.migration_checks import (
    MigrationCheck,
    digest_of_paths,
    record_statements,
    tree_digest,
)

FILES = [("00000000000001_init.sql", b"-- +goose Up\nCREATE TABLE t (id int);\n"), ("20260101000000_x.py", b"")]


def test_the_digest_is_stable_and_independent_of_the_order():
    first = tree_digest(FILES)
    assert first == tree_digest(reversed(FILES)) == tree_digest(list(FILES))
    assert len(first) == 64 and int(first, 16) >= 0


@pytest.mark.parametrize(
    "changed",
    [
        [FILES[0]],  # a file less
        [*FILES, ("20270101000000_new.sql", b"-- +goose Up\n")],  # a file more
        [("00000000000002_init.sql", FILES[0][1]), FILES[1]],  # renamed
        [(FILES[0][0], FILES[0][1] + b"\n"), FILES[1]],  # edited
        [(FILES[0][0] + FILES[0][1][:3].decode(), FILES[0][1][3:]), FILES[1]],  # name and contents shifted
    ],
)
def test_any_change_of_a_name_or_a_content_changes_the_digest(changed):
    assert tree_digest(changed) != tree_digest(FILES)


def test_the_digest_of_files_on_disk_names_them_by_base_name(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        for name, contents in FILES:
            (tmp_path / folder / name).write_bytes(contents)
    digests = {digest_of_paths(str(tmp_path / folder / name) for name, _contents in FILES) for folder in ("a", "b")}
    assert digests == {tree_digest(FILES)}


@pytest.mark.parametrize(
    ("other", "same"),
    [
        (MigrationCheck("ca", "d", 2, 2, checked_at="2026-01-01 00:00:00+00"), True),  # the time does not count
        (MigrationCheck("ca", "e", 2, 2), False),
        (MigrationCheck("ca", "d", 3, 2), False),
        (MigrationCheck("ca", "d", 2, 1), False),
        (None, False),
    ],
)
def test_a_record_is_the_same_when_tree_and_versions_are(other, same):
    assert MigrationCheck("ca", "d", 2, 2).same_as(other) is same


@pytest.mark.parametrize(("table_exists", "count"), [(True, 1), (False, 2)])
def test_the_table_is_created_only_when_missing(table_exists, count):
    statements = record_statements(MigrationCheck("ca", "d", 2, 2), table_exists)
    assert len(statements) == count
    query, params = statements[-1]
    assert params == ("d", 2, 2, 0, "ca")
    assert "ON CONFLICT (schema_name) DO UPDATE" in repr(query)
