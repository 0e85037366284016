"""Owner and grants of a published copy, and what its service role lacks: the pure decisions of ``access``."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy import access
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.catalog_model import (
    Grant,
    SourceCatalog,
    Table,
)
from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import GOOSE_TABLE

PG15_PUBLIC = [
    Grant("pg_database_owner", "CREATE", False),
    Grant("pg_database_owner", "USAGE", False),
    Grant("PUBLIC", "USAGE", False),
]


def catalog(owner: str, acl=None, tables=()) -> SourceCatalog:
    source = SourceCatalog("va", "public", owner, "standard public schema", acl)
    source.tables = [Table(name, 0, table_owner) for name, table_owner in tables]
    return source


@pytest.mark.parametrize(
    ("acl", "database_owner", "expected"),
    [
        (None, "app", None),
        ([], "app", []),
        (
            PG15_PUBLIC,
            "app",
            [Grant("app", "CREATE", False), Grant("app", "USAGE", False), Grant("PUBLIC", "USAGE", False)],
        ),
        # The owner of the database also granted directly: once.
        (
            [Grant("app", "USAGE", False), Grant("pg_database_owner", "USAGE", False)],
            "app",
            [Grant("app", "USAGE", False)],
        ),
        (
            [Grant("postgres", "USAGE", False), Grant("PUBLIC", "CREATE", False)],
            "app",
            [Grant("postgres", "USAGE", False), Grant("PUBLIC", "CREATE", False)],
        ),
    ],
)
def test_mapped_acl_gives_the_grants_of_pg_database_owner_to_the_database_owner(acl, database_owner, expected):
    assert access.mapped_acl(acl, database_owner) == expected


@pytest.mark.parametrize(
    ("given", "schema_owner", "database_owner", "expected"),
    [
        (None, "pg_database_owner", "app", "app"),  # PostgreSQL 15+
        (None, "postgres", "app", "postgres"),  # PostgreSQL 13/14: the bootstrap superuser's, kept
        (None, "other", "app", "other"),
        ("admin", "pg_database_owner", "app", "admin"),
    ],
)
def test_published_owner(given, schema_owner, database_owner, expected):
    assert access.published_owner(given, catalog(schema_owner), database_owner) == expected


@pytest.mark.parametrize(
    ("given", "tables", "database_owner", "expected"),
    [
        (None, [(GOOSE_TABLE, "app"), ("certs", "app")], "dbo", "app"),
        (None, [("certs", "app")], "dbo", "dbo"),
        ("svc", [(GOOSE_TABLE, "app")], "dbo", "svc"),
        (None, [(GOOSE_TABLE, "pg_database_owner")], "dbo", "dbo"),
    ],
)
def test_service_role_is_the_operators_else_the_goose_owner_else_the_database_owner(
    given, tables, database_owner, expected
):
    goose_owner = access.catalog_goose_owner(catalog("pg_database_owner", tables=tables))
    assert access.service_role(given, goose_owner, database_owner) == expected


def holds_of(*roles: str):
    return lambda role: role == "PUBLIC" or role in roles


@pytest.mark.parametrize(
    ("owner", "acl", "holds", "missing"),
    [
        ("app", None, holds_of("app"), []),  # the owner
        ("postgres", None, holds_of("app"), ["USAGE", "CREATE"]),  # an older copy: the login user's, no grants
        ("postgres", None, holds_of("app", "postgres"), []),  # a superuser holds every role
        ("admin", access.mapped_acl(PG15_PUBLIC, "app"), holds_of("app"), []),  # granted as the database owner
        ("admin", access.mapped_acl(PG15_PUBLIC, "app"), holds_of("svc"), ["CREATE"]),  # USAGE through PUBLIC
        ("admin", [Grant("group", "CREATE", False)], holds_of("svc", "group"), ["USAGE"]),  # through a member role
        ("postgres", [Grant("PUBLIC", "USAGE", False), Grant("PUBLIC", "CREATE", False)], holds_of("svc"), []),
    ],
)
def test_missing_schema_privileges(owner, acl, holds, missing):
    assert access.missing_schema_privileges(owner, acl, holds) == missing


@pytest.mark.parametrize(
    ("value", "targets", "expected"),
    [
        (None, ["va"], {}),
        ("app", ["va", "kms"], {"va": "app", "kms": "app"}),
        ({"va": "app", "ca": "ca_role"}, ["va"], {"va": "app"}),  # other Lamassu services are allowed
        ({"ca": "ca_role"}, ["lg_va"], {}),
        ({"lg_va": "app"}, ["lg_va"], {"lg_va": "app"}),
    ],
)
def test_given_roles_per_target(value, targets, expected):
    assert access.given_roles(value, targets) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"nope": "app"}, "nope"),
        ({"va": "pg_database_owner"}, "pg_database_owner"),
        (["app"], "mapping"),
    ],
)
def test_given_roles_refuses(value, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        access.given_roles(value, ["va"])
