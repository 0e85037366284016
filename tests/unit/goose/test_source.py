"""Migration discovery: goose v3 Provider's rules, plus our .py migrations."""

from __future__ import annotations

import os

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.source import (
    MigrationSource,
    collect,
    parse_version,
)


@pytest.mark.parametrize(
    ("filename", "version"),
    [
        ("00000000000001_create_initial_tables.sql", 1),
        ("20250123125500_add_column.sql", 20250123125500),
        ("1_x.go", 1),
        ("7_port.py", 7),
        ("/some/dir/0042_x.sql", 42),
        ("5_with_more_underscores_v2.sql", 5),
        ("+5_signed.sql", 5),  # Go's ParseInt accepts a plus sign
        ("9223372036854775807_max.sql", 2**63 - 1),
        ("README.md", None),
        ("foo.sql", None),
        ("helpers.go", None),
        ("create_tables.sql", None),
        ("_1.sql", None),
        ("v1_x.sql", None),
        ("1a_x.sql", None),
        ("1 _x.sql", None),
        ("\uff11_fullwidth_digit.sql", None),
        ("1_x_test.go", None),
        ("1_x.SQL", None),
        ("1_x.sql.bak", None),
        ("1_x.txt", None),
        ("__init__.py", None),
    ],
)
def test_parse_version(filename, version):
    assert parse_version(filename) == version


@pytest.mark.parametrize(
    ("filename", "cause"),
    [
        ("0_zero.sql", "must be greater than zero"),
        ("00000_zero.go", "must be greater than zero"),
        ("-3_negative.sql", "must be greater than zero"),
        ("9223372036854775808_too_big.sql", "int64"),
    ],
)
def test_parse_version_rejects_unusable_versions(filename, cause):
    with pytest.raises(InvalidInput, match=cause) as info:
        parse_version(filename)
    assert filename in str(info.value)


def _tree(root, names):
    for name in names:
        path = root / name
        if name.endswith("/"):
            path.mkdir()
        else:
            path.write_text("-- +goose Up\nSELECT 1;\n")
    return str(root)


def test_collect_orders_by_version_and_ignores_non_migrations(tmp_path):
    directory = _tree(
        tmp_path,
        [
            "20250123125500_add_index.sql",
            "00000000000001_create_initial_tables.sql",
            "00000000000003_port.py",
            "00000000000002_go_only.go",
            "README.md",
            "foo.sql",
            "helpers.go",
            "00000000000004_helpers_test.go",
            "5_upper.SQL",
            ".6_hidden.sql",
            "7_a_directory.sql/",
        ],
    )
    assert collect(directory) == [
        MigrationSource(
            1,
            "00000000000001_create_initial_tables.sql",
            os.path.join(directory, "00000000000001_create_initial_tables.sql"),
            "sql",
        ),
        MigrationSource(2, "00000000000002_go_only.go", os.path.join(directory, "00000000000002_go_only.go"), "go"),
        MigrationSource(3, "00000000000003_port.py", os.path.join(directory, "00000000000003_port.py"), "py"),
        MigrationSource(
            20250123125500,
            "20250123125500_add_index.sql",
            os.path.join(directory, "20250123125500_add_index.sql"),
            "sql",
        ),
    ]


def test_collect_pairs_go_and_py_of_one_version(tmp_path):
    directory = _tree(tmp_path, ["00000000000002_seed.go", "00000000000002_seed.py", "00000000000001_init.sql"])
    sources = collect(directory)
    assert [s.version for s in sources] == [1, 2]
    assert sources[1] == MigrationSource(
        version=2,
        name="00000000000002_seed.py",
        path=os.path.join(directory, "00000000000002_seed.py"),
        kind="py",
        go_path=os.path.join(directory, "00000000000002_seed.go"),
    )
    assert sources[0].go_path is None


def test_collect_empty_directory(tmp_path):
    assert collect(str(tmp_path)) == []


@pytest.mark.parametrize(
    "names",
    [
        ["001_a.sql", "1_b.sql"],
        ["2_a.sql", "2_a.go"],
        ["3_a.sql", "3_a.py"],
        ["4_a.go", "4_b.go"],
        ["5_a.py", "5_b.py"],
        ["6_a.go", "6_a.py", "6_a.sql"],
    ],
    ids=["two_sql", "sql_and_go", "sql_and_py", "two_go", "two_py", "go_py_and_sql"],
)
def test_collect_duplicates_name_both_files(tmp_path, names):
    directory = _tree(tmp_path, names)
    with pytest.raises(InvalidInput, match="found duplicate migration version") as info:
        collect(directory)
    message = str(info.value)
    named = [name for name in names if name in message]
    assert len(named) == 2, message
    assert directory in message


def test_collect_refuses_version_zero(tmp_path):
    directory = _tree(tmp_path, ["1_ok.sql", "0_zero.sql"])
    with pytest.raises(InvalidInput, match=r"0_zero\.sql: version 0 is not valid"):
        collect(directory)


def test_collect_missing_or_wrong_directory(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(InvalidInput, match=f"migration directory {missing} does not exist"):
        collect(missing)
    a_file = tmp_path / "file.sql"
    a_file.write_text("")
    with pytest.raises(InvalidInput, match="is not a directory"):
        collect(str(a_file))


def test_collect_unreadable_directory(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)  # ELOOP: an OSError that is neither "missing" nor "not a directory", even for root
    with pytest.raises(InvalidInput, match=f"cannot read migration directory {loop}: "):
        collect(str(loop))
