"""postgres_db_to_schema and the services' own login role: after a copy made by ``postgres``, the role that owned
the legacy databases logs in (scram, its password) and uses its schema, and goose-lamassu's first statement
(``CREATE SCHEMA IF NOT EXISTS``) passes. Check mode first, apply, re-run unchanged; a revoked grant is repaired."""

from __future__ import annotations

import contextlib
import uuid

import psycopg2
import pytest
from psycopg2 import sql

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.request import staging_name
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import GOOSE_TABLE, JOURNAL_SCHEMA
from tests.harness.ansible import run_module
from tests.harness.catalog import catalog_snapshot, diff_descriptions
from tests.harness.fixture import build_legacy

MODULE = "postgres_db_to_schema"
SERVICES = ["va", "kms"]
PASSWORD = "app-Secret-1"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def query(cluster, database: str, statement, params=None) -> list[tuple]:
    with contextlib.closing(cluster.connect(database)) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


def login_role(cluster, name: str, login: bool = True) -> str:
    query(
        cluster,
        "postgres",
        sql.SQL("CREATE ROLE {} {}").format(
            sql.Identifier(name),
            sql.SQL("LOGIN PASSWORD {}").format(sql.Literal(PASSWORD)) if login else sql.SQL("NOLOGIN"),
        ),
    )
    return name


@pytest.fixture
def legacy(pg):
    """Legacy va and kms owned by a LOGIN role, and the unified database with empty schemas owned by postgres (as
    the role's first task, postgres_lamassu_schema, leaves them when Ansible logs in as postgres)."""
    prefix, app, target = unique("ac") + "_", unique("app"), unique("lamassu")
    summary = build_legacy(pg, scale=0.001, services=SERVICES, prefix=prefix, app_role=app, app_password=PASSWORD)
    made = run_module("postgres_lamassu_schema", {"database": target, "schemas": SERVICES}, pg).result
    assert not made.get("failed"), made.get("msg")
    return prefix, app, target, summary


def server_version(cluster) -> int:
    return int(query(cluster, "postgres", "SHOW server_version_num")[0][0])


def schema_owner(cluster, database: str, schema: str) -> str:
    return query(cluster, database, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (schema,))[
        0
    ][0]


def public_privileges(cluster, database: str, schema: str) -> set[str]:
    rows = query(
        cluster,
        database,
        "SELECT x.privilege_type FROM pg_namespace n, aclexplode(n.nspacl) x WHERE n.nspname = %s AND x.grantee = 0",
        (schema,),
    )
    return {privilege for (privilege,) in rows}


def database_privileges(cluster, role: str, database: str) -> dict[str, bool]:
    return {
        privilege: query(cluster, "postgres", "SELECT has_database_privilege(%s, %s, %s)", (role, database, privilege))[
            0
        ][0]
        for privilege in ("CONNECT", "CREATE")
    }


def database_grant(queries: list[str], target: str, role: str) -> list[str]:
    return [q for q in queries if q.startswith("GRANT ") and q.endswith(f'ON DATABASE "{target}" TO "{role}"')]


@contextlib.contextmanager
def as_service(cluster, role: str, database: str, schema: str):
    conn = psycopg2.connect(
        host="127.0.0.1",
        port=cluster.port,
        user=role,
        password=PASSWORD,
        dbname=database,
        options=f"-c search_path={schema}",
    )
    try:
        yield conn
    finally:
        conn.close()


def assert_service_uses(cluster, role: str, database: str, schema: str, tables: dict[str, int] | None) -> None:
    """What the service and goose-lamassu do first: read (and lock for writing) every table, create its schema if
    missing, read the goose table, create a table in its schema."""
    with as_service(cluster, role, database, schema) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            if tables is not None:
                for table, rows in tables.items():
                    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
                    assert cur.fetchone()[0] == rows, table
                cur.execute(sql.SQL("SELECT max(version_id) FROM {}").format(sql.Identifier(GOOSE_TABLE)))
                assert cur.fetchone()[0] is not None
        conn.autocommit = False
        with conn.cursor() as cur:
            for table in tables or {}:
                cur.execute(sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(sql.Identifier(table)))
            cur.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(schema, "access_probe")))
        conn.rollback()


def test_the_service_role_uses_its_copies_check_apply_rerun(pg, legacy):
    prefix, app, target, summary = legacy
    args = {"services": SERVICES, "source_prefix": prefix, "target_database": target}
    assert database_privileges(pg, app, target)["CREATE"] is False

    before = catalog_snapshot(pg.connect(target))
    planned = run_module(MODULE, args, pg, check=True).result
    assert planned["changed"] is True and not planned.get("failed"), planned.get("msg")
    va, kms = planned["results"]
    assert va["service_role"] == app and kms["service_role"] == app
    assert [q.split(" ON ")[0] for q in database_grant(va["queries"], target, app)] in (
        ["GRANT CREATE"],
        ["GRANT CONNECT, CREATE"],
    ), va["queries"]
    assert f'ALTER SCHEMA "{staging_name("va")}" OWNER TO "{app}"' in va["queries"]
    assert not diff_descriptions(before, catalog_snapshot(pg.connect(target)), ("before", "after check mode"))
    assert database_privileges(pg, app, target)["CREATE"] is False

    applied = run_module(MODULE, args, pg).result
    assert applied["changed"] is True and not applied.get("failed"), applied.get("msg")
    va, kms = applied["results"]
    # The first copy granted on the database; the second found it granted.
    assert database_grant(va["queries"], target, app) == database_grant(planned["results"][0]["queries"], target, app)
    assert database_grant(kms["queries"], target, app) == []
    assert database_privileges(pg, app, target) == {"CONNECT": True, "CREATE": True}
    for result in (va, kms):
        assert result["service_role"] == app
        assert f"user={app} " in result["dsn"]["pgx"] and f"user={app} " in result["dsn"]["libpq"]
        assert PASSWORD not in str(result)
    for service in SERVICES:
        if server_version(pg) >= 150000:  # public belonged to pg_database_owner: the owner of the legacy database
            assert schema_owner(pg, target, service) == app
        assert "USAGE" in public_privileges(pg, target, service)  # the source's ACL came along
        assert_service_uses(pg, app, target, service, summary[prefix + service]["tables"])

    again = run_module(MODULE, args, pg).result
    assert again["changed"] is False and not again.get("failed"), again.get("msg")
    assert all(not q.startswith("GRANT ") for r in again["results"] for q in r["queries"]), again["results"]


def test_a_rerun_repairs_revoked_or_missing_access(pg, legacy):
    prefix, app, target, summary = legacy
    args = {"source_database": prefix + "va", "target_database": target, "target_schema": "va"}
    first = run_module(MODULE, args, pg).result
    assert first["changed"] is True and not first.get("failed"), first.get("msg")

    # Revoked afterwards, and the schema as a copy of an older version left it: the login user's, no grants.
    query(
        pg,
        "postgres",
        sql.SQL("REVOKE CONNECT, CREATE ON DATABASE {} FROM {}").format(*map(sql.Identifier, (target, app))),
    )
    query(pg, target, "ALTER SCHEMA va OWNER TO CURRENT_USER")
    query(pg, target, sql.SQL("REVOKE ALL ON SCHEMA va FROM PUBLIC, {}").format(sql.Identifier(app)))
    assert database_privileges(pg, app, target)["CREATE"] is False

    before = catalog_snapshot(pg.connect(target))
    planned = run_module(MODULE, args, pg, check=True).result
    assert planned["changed"] is True and not planned.get("failed"), planned.get("msg")
    grants = [q for q in planned["queries"] if q.startswith("GRANT ")]
    assert f'GRANT USAGE, CREATE ON SCHEMA "va" TO "{app}"' in grants, planned["queries"]
    assert database_grant(grants, target, app), planned["queries"]
    assert not diff_descriptions(before, catalog_snapshot(pg.connect(target)), ("before", "after check mode"))

    repaired = run_module(MODULE, args, pg).result
    assert repaired["changed"] is True and not repaired.get("failed"), repaired.get("msg")
    assert [q for q in repaired["queries"] if q.startswith("GRANT ")] == grants
    assert "recorded" in repaired  # no new copy: the recorded one got its access
    assert_service_uses(pg, app, target, "va", summary[prefix + "va"]["tables"])

    again = run_module(MODULE, args, pg).result
    assert again["changed"] is False and not again.get("failed"), again.get("msg")
    assert not [q for q in again["queries"] if q.startswith("GRANT ")], again["queries"]


def test_owner_and_service_role_overrides(pg, legacy):
    prefix, app, target, _summary = legacy
    owner = login_role(pg, unique("own"), login=False)
    service = login_role(pg, unique("svc"))
    single = run_module(
        MODULE,
        {
            "source_database": prefix + "kms",
            "target_database": target,
            "target_schema": "kms",
            "owner": owner,
            "service_role": service,
        },
        pg,
    ).result
    assert single["changed"] is True and not single.get("failed"), single.get("msg")
    assert single["service_role"] == service and f"user={service} " in single["dsn"]["pgx"]
    assert schema_owner(pg, target, "kms") == owner
    # USAGE comes through PUBLIC (the source's ACL); CREATE it lacked.
    assert f'GRANT CREATE ON SCHEMA "kms" TO "{service}"' in single["queries"], single["queries"]
    assert database_grant(single["queries"], target, service), single["queries"]
    # Its tables stay the legacy owner's: the overriding role creates its schema and new tables, no more.
    assert_service_uses(pg, service, target, "kms", None)

    # A mapping per service, with the services form: va's role is given, kms's is read (and recorded already).
    mapped = run_module(
        MODULE,
        {"services": SERVICES, "source_prefix": prefix, "target_database": target, "service_role": {"va": service}},
        pg,
    ).result
    assert mapped["changed"] is True and not mapped.get("failed"), mapped.get("msg")
    assert [r["service_role"] for r in mapped["results"]] == [service, app]
    assert f'GRANT CREATE ON SCHEMA "va" TO "{service}"' in mapped["results"][0]["queries"]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"service_role": "no_such_role"}, "'no_such_role', which does not exist"),
        ({"owner": "no_such_owner"}, "'no_such_owner', which does not exist"),
        ({"service_role": {"va": "no_such_role"}}, "'no_such_role', which does not exist"),
        ({"service_role": {"vaa": "x"}}, "vaa"),
    ],
)
def test_unknown_roles_or_services_fail_before_anything_changes(pg, legacy, options, fragment):
    prefix, _app, target, _summary = legacy
    before = catalog_snapshot(pg.connect(target))
    failed = run_module(
        MODULE, {"services": SERVICES, "source_prefix": prefix, "target_database": target, **options}, pg
    ).result
    assert failed.get("failed") is True and fragment in failed["msg"], failed.get("msg")
    assert not diff_descriptions(before, catalog_snapshot(pg.connect(target)), ("before", "after the failure"))
    assert JOURNAL_SCHEMA not in {n for (n,) in query(pg, target, "SELECT nspname FROM pg_namespace")}


def test_a_non_superuser_login_with_createdb_and_membership_in_the_app_role(pg, legacy):
    """Ansible logs in as a role that is no superuser: CREATEDB and a member of the services' role."""
    prefix, app, _target, summary = legacy
    ops = login_role(pg, unique("ops"))
    query(pg, "postgres", sql.SQL("ALTER ROLE {} CREATEDB").format(sql.Identifier(ops)))
    query(pg, "postgres", sql.SQL("GRANT {} TO {}").format(sql.Identifier(app), sql.Identifier(ops)))
    login = {"login_host": "127.0.0.1", "login_port": pg.port, "login_user": ops, "login_password": PASSWORD}
    target = unique("lamassu")
    made = run_module("postgres_lamassu_schema", {"database": target, "schemas": SERVICES}, connection=login).result
    assert not made.get("failed"), made.get("msg")
    args = {"services": SERVICES, "source_prefix": prefix, "target_database": target}
    copied = run_module(MODULE, args, connection=login).result
    assert copied["changed"] is True and not copied.get("failed"), copied.get("msg")
    assert PASSWORD not in str(copied)
    for service in SERVICES:
        assert_service_uses(pg, app, target, service, summary[prefix + service]["tables"])
    again = run_module(MODULE, args, connection=login).result
    assert again["changed"] is False and not again.get("failed"), again.get("msg")
