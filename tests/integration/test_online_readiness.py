"""postgres_lamassu_info through Ansible: whether the online move can run (``online``, the plan's problems and
steps) and the collection's replication slots (``replication_slots``, a leftover one among the problems).

Every slot and publication a test makes is dropped in a ``finally``; info itself changes nothing."""

from __future__ import annotations

import contextlib

import pytest
from psycopg2 import sql

from ansible_collections.lamassuiot.postgres.plugins.module_utils import online_checks
from ansible_collections.lamassuiot.postgres.plugins.module_utils.locks import UPGRADE_LOCK_ID
from ansible_collections.lamassuiot.postgres.plugins.module_utils.session import Session
from tests.harness.ansible import run_module
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import throwaway_cluster
from tests.harness.snapshot import server_state, state_differences

MODULE = "postgres_lamassu_info"
SERVICES = ("va", "kms")
ONLINE_STEPS = ["lock", "preflight", "live", "stop", "switch", "cutover", "login_check"]


def info(cluster, prefix: str, database: str, connection: dict | None = None, mode: str = "online") -> dict:
    params = {"database": database, "services": list(SERVICES), "source_prefix": prefix, "plan": {"move_mode": mode}}
    result = run_module(MODULE, params, cluster, connection=connection).result
    assert not result.get("failed"), result
    return result


def replication_state(cluster, databases: list[str]) -> dict:
    """What the online move would change and the catalog snapshot does not show: slots, publications and the
    replica identity of every table."""
    state = {"slots": cluster.query("postgres", "SELECT slot_name::text FROM pg_replication_slots ORDER BY 1")}
    for name in databases:
        state[name] = cluster.query(
            name,
            "SELECT 'pub', pubname::text FROM pg_publication UNION ALL SELECT relname::text, relreplident::text "
            "FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1, 2",
        )
    return state


def as_superuser(cluster, statement, params=None) -> None:
    with contextlib.closing(cluster.connect()) as conn, conn.cursor() as cur:
        cur.execute(statement, params)


def online_messages(result: dict) -> list[str]:
    return [problem["msg"] for problem in result["online"]["problems"]]


def test_a_logical_server_is_ready_and_a_leftover_slot_is_named_with_its_wal(pg, unique_name):
    prefix, database = f"{unique_name}_", f"{unique_name}_lamassu"
    build_legacy(pg, scale=0.001, services=SERVICES, prefix=prefix)
    sources = [prefix + s for s in SERVICES]
    before = (server_state(pg, [*sources, database]), replication_state(pg, sources))

    ready = info(pg, prefix, database)
    assert ready["online"]["mode"] == "online" and ready["online"]["ready"] is True, ready["online"]
    assert ready["online"]["problems"] == [] and ready["plan"]["problems"] == [] and ready["problems"] == []
    assert ready["plan"]["steps"] == ONLINE_STEPS
    checks = ready["online"]["checks"]
    assert checks["wal_level"] == "logical" and checks["slots_needed"] == 2 and checks["slots_free"] >= 2
    assert checks["services"] == list(SERVICES) and checks["sources"]["va"]["without_identity"] == []
    assert ready["replication_slots"] == []
    offline = info(pg, prefix, database, mode="offline")
    assert offline["online"]["mode"] == "offline" and "copy" in offline["plan"]["steps"]
    assert "live" not in offline["plan"]["steps"]

    slot = f"{online_checks.MOVE_PREFIX}0_{unique_name}"
    try:
        pg.execute(prefix + "va", f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
        pg.execute(prefix + "va", f'CREATE PUBLICATION "{slot}" FOR TABLE va_role')
        pg.execute("postgres", "CREATE TABLE wal_filler AS SELECT g, repeat('x', 500) FROM generate_series(1, 4000) g")
        pg.execute("postgres", "DROP TABLE wal_filler")

        left = info(pg, prefix, database)
        [found] = left["replication_slots"]
        assert found["slot_name"] == slot and found["database"] == prefix + "va" and found["plugin"] == "pgoutput"
        assert found["active"] is False and found["stale"] is True and found["retained_bytes"] > 1000000
        [problem] = [p for p in left["problems"] if slot in p]
        assert " MB of WAL" in problem and f"SELECT pg_drop_replication_slot('{slot}')" in problem
        assert "lamassuiot.postgres.rollback" in problem and left["ready"] is False
        assert {"database": prefix + "va", "name": slot} in left["online"]["checks"]["publications"]
        assert slot in left["online"]["checks"]["other_slots"]  # not a slot of this run's services

        # Under the upgrade lock (an upgrade's preflight) a slot not in use is a move to resume, not stale.
        with contextlib.closing(pg.connect("postgres")) as holder, holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (UPGRADE_LOCK_ID,))
            locked = info(pg, prefix, database)
        assert locked["replication_slots"][0]["stale"] is False and not any(slot in p for p in locked["problems"])

        # The helpers rollback and cleanup call drop them, and say so in their queries.
        queries: list[str] = []
        with contextlib.closing(pg.connect(prefix + "va")) as conn:
            online_checks.drop_publication(Session(conn, queries), slot)
        with contextlib.closing(pg.connect("postgres")) as conn:
            online_checks.drop_slot(Session(conn, queries), slot)
            assert online_checks.read_slots(Session(conn, [])) == []
        assert queries == [
            f'DROP PUBLICATION IF EXISTS "{slot}"',
            f"SELECT pg_catalog.pg_drop_replication_slot('{slot}')",
        ]
    finally:
        pg.execute(prefix + "va", f'DROP PUBLICATION IF EXISTS "{slot}"')
        if pg.query("postgres", "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)):
            pg.execute("postgres", f"SELECT pg_drop_replication_slot('{slot}')")

    assert state_differences(before[0], server_state(pg, [*sources, database])) == []
    assert replication_state(pg, sources) == before[1]


def test_a_login_role_is_told_each_grant_the_online_move_needs(pg, unique_name):
    prefix, database = f"{unique_name}_", f"{unique_name}_lamassu"
    build_legacy(pg, scale=0.001, services=SERVICES, prefix=prefix)
    role, password = f"{unique_name}_mover", "mover-secret-pw"
    identifier = sql.Identifier(role)
    as_superuser(pg, sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD %s").format(identifier), (password,))
    connection = {**pg.module_defaults(), "login_user": role, "login_password": password}
    try:
        lacking = info(pg, prefix, database, connection=connection)
        text = " | ".join(online_messages(lacking))
        assert f"ALTER ROLE {role} REPLICATION" in text
        for name in (prefix + s for s in SERVICES):
            assert f"GRANT CREATE ON DATABASE {name} TO {role}" in text
        assert f"GRANT admin TO {role}" in text and "goose_db_version" in text
        assert lacking["online"]["ready"] is False
        assert [p["msg"] for p in lacking["plan"]["problems"][-len(lacking["online"]["problems"]) :]] == (
            online_messages(lacking)
        )
        assert all(p["fix"]["option"] == "move_mode" for p in lacking["online"]["problems"])
        assert password not in str(lacking)

        as_superuser(pg, sql.SQL("GRANT admin TO {}").format(identifier))
        member = info(pg, prefix, database, connection=connection)
        assert online_messages(member) == [
            f"login role {role!r} has neither REPLICATION nor superuser: the online move creates replication slots "
            f"and reads their changes; run ALTER ROLE {role} REPLICATION"
        ]

        as_superuser(pg, sql.SQL("ALTER ROLE {} REPLICATION").format(identifier))
        ready = info(pg, prefix, database, connection=connection)
        assert ready["online"]["ready"] is True and ready["online"]["checks"]["replication"] is True
        assert ready["online"]["checks"]["superuser"] is False
    finally:
        as_superuser(pg, sql.SQL("DROP ROLE IF EXISTS {}").format(identifier))


def test_a_table_without_primary_key_is_refused_naming_it_and_the_source_is_left_alone(pg, unique_name):
    prefix, database = f"{unique_name}_", f"{unique_name}_lamassu"
    build_legacy(pg, scale=0.001, services=SERVICES, prefix=prefix)
    pg.execute(prefix + "kms", "CREATE TABLE public.audit_log (at timestamptz, line text)")
    sources = [prefix + s for s in SERVICES]
    before = (server_state(pg, sources), replication_state(pg, sources))

    refused = info(pg, prefix, database)
    [problem] = online_messages(refused)
    assert f"table 'audit_log' of legacy database '{prefix}kms' has no replica identity" in problem
    assert "add a primary key" in problem and "lamassu_move_mode: offline" in problem
    assert refused["online"]["checks"]["sources"]["kms"]["without_identity"] == ["audit_log"]
    assert problem in [p["msg"] for p in refused["plan"]["problems"]]
    assert refused["problems"] == []  # offline would copy it: only the online move is refused

    assert state_differences(before[0], server_state(pg, sources)) == []
    assert replication_state(pg, sources) == before[1]


def test_wal_level_replica_is_refused_naming_alter_system(unique_name):
    with throwaway_cluster(settings={"wal_level": "replica"}) as cluster:
        if cluster.external:
            pytest.skip("needs a cluster of its own with wal_level = replica")
        build_legacy(cluster, scale=0.001, services=SERVICES, prefix="")
        result = info(cluster, "", "lamassu")
        [problem] = online_messages(result)
        assert problem.startswith("wal_level is 'replica'") and "ALTER SYSTEM SET wal_level = logical" in problem
        assert "restart PostgreSQL" in problem and "outage" in problem
        assert result["plan"]["problems"] == result["online"]["problems"]
        assert result["online"]["checks"]["wal_level"] == "replica"
        # offline the same server is ready
        assert info(cluster, "", "lamassu", mode="offline")["plan"]["problems"] == []
