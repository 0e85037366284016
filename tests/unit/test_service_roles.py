"""The login role of a service: the operator's, else the goose table's owner, else the database's owner."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils import service_roles as roles
from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput

SERVICES = ("ca", "va")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {}),
        ("", {}),
        ({}, {}),
        ("lamassu_app", {"ca": "lamassu_app", "va": "lamassu_app"}),
        ({"ca": "ca_role"}, {"ca": "ca_role"}),
        ({"ca": "ca_role", "va": None}, {"ca": "ca_role"}),
        ({"va": 'we"ird role'}, {"va": 'we"ird role'}),
    ],
)
def test_overrides_take_one_role_or_one_per_service(value, expected):
    assert roles.overrides(value, SERVICES) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"kms": "x"}, "names kms, not services of this run"),
        (["ca"], "role name or a mapping"),
        (5, "role name or a mapping"),
        ({"ca": 5}, "must be a role name"),
        ("x" * 64, "64 bytes"),
        ("pg_database_owner", "name a login role"),
    ],
)
def test_bad_overrides_say_why(value, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        roles.overrides(value, SERVICES)


@pytest.mark.parametrize(
    ("given", "goose_owner", "database_owner", "expected"),
    [
        ("op", "app", "dba", ("op", roles.FROM_OVERRIDE)),
        (None, "app", "dba", ("app", roles.FROM_TABLES)),
        (None, None, "dba", ("dba", roles.FROM_DATABASE)),
        (None, None, None, (None, roles.FROM_DATABASE)),
    ],
)
def test_decide(given, goose_owner, database_owner, expected):
    assert roles.decide(given, goose_owner, database_owner) == expected


@pytest.mark.parametrize(("role", "expected"), [("pg_database_owner", "app"), ("postgres", "postgres"), (None, None)])
def test_concrete_replaces_the_database_owner_stand_in(role, expected):
    assert roles.concrete(role, "app") == expected
