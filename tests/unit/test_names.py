"""Identifier checks: what PostgreSQL would truncate or reserve is refused; everything else is kept exactly."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.names import check_identifier


@pytest.mark.parametrize(
    "name",
    ["ca", "CamelCase", 'we"ird', "has space", "semi;colon", "x" * 63, "é" * 31 + "x", "-- comment", "$$"],
)
def test_accepted_names_are_returned_unchanged(name):
    assert check_identifier(name, "schema") == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        (None, "empty"),
        ("x" * 64, "64 bytes"),
        ("é" * 32, "64 bytes"),
        ("pg_catalog", "pg_"),
        ("PG_X", "pg_"),
        ("a\x00b", "NUL"),
    ],
)
def test_refused_names_say_why(name, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        check_identifier(name, "schema")


def test_system_prefix_allowed_for_roles():
    assert check_identifier("pg_monitor", "role", allow_system=True) == "pg_monitor"
