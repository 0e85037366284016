"""The rules of the online move's readiness (module_utils/online_checks.py): each failing point a problem whose
sentence says what to do, and the collection's slots that are left over."""

from __future__ import annotations

import dataclasses

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import move_slot_name
from ansible_collections.lamassuiot.postgres.plugins.module_utils.online_checks import (
    ServerFacts,
    Slot,
    SourceFacts,
    SourceTable,
    assess,
    leftover_publications,
    name_pattern,
    settings_problems,
    shown,
    source_problems,
    stale_slot_problem,
)

OFFLINE = {"option": "move_mode", "value": "offline"}


def server(**changes) -> ServerFacts:
    """A server where the online move can run."""
    ready = ServerFacts(
        version="15.8",
        version_num=150008,
        wal_level="logical",
        max_replication_slots=10,
        max_wal_senders=10,
        wal_senders_active=0,
        login_user="postgres",
        superuser=True,
        replication=True,
        target_oid=16384,
    )
    return dataclasses.replace(ready, **changes)


def table(name="certificates", owner="admin", owned=True, identity="d", primary_key=True) -> SourceTable:
    return SourceTable(name, owner, owned, identity, primary_key)


def source(*tables, can_create=True) -> SourceFacts:
    return SourceFacts(database="ca", can_create=can_create, tables=list(tables) or [table()])


def test_a_ready_server_has_no_problem_and_shows_what_it_read():
    got = assess(server(), {"ca": source()}, ["ca"], "online")
    assert got["mode"] == "online" and got["ready"] is True and got["problems"] == []
    checks = got["checks"]
    assert checks["wal_level"] == "logical" and checks["slots_free"] == 10 and checks["slots_needed"] == 1
    assert checks["sources"] == {
        "ca": {"database": "ca", "can_create": True, "tables": 1, "not_owned": [], "without_identity": []}
    }


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (
            {"wal_level": "replica"},
            ["wal_level is 'replica'", "ALTER SYSTEM SET wal_level = logical", "restart", "outage"],
        ),
        ({"version": "19.0", "version_num": 190000}, ["PostgreSQL 19.0", "13 to 18"]),
        ({"version": "12.20", "version_num": 120020}, ["PostgreSQL 12.20", "13 to 18"]),
        ({"max_replication_slots": 1}, ["max_replication_slots is 1", "ALTER SYSTEM SET max_replication_slots = 2"]),
        ({"max_wal_senders": 3, "wal_senders_active": 2}, ["max_wal_senders is 3", "max_wal_senders = 4"]),
        (
            {"superuser": False, "replication": False},
            ["neither REPLICATION nor superuser", "ALTER ROLE postgres REPLICATION"],
        ),
    ],
)
def test_each_setting_that_keeps_the_online_move_from_running_names_its_fix(changes, words):
    problems = settings_problems(server(**changes), ["ca", "kms"])
    assert len(problems) == 1, problems
    for word in words:
        assert word in problems[0]
    assert {k: problems[0].fix[k] for k in OFFLINE} == OFFLINE


def test_a_replication_role_that_is_no_superuser_is_enough():
    assert settings_problems(server(superuser=False, replication=True), ["ca"]) == []


def test_the_collections_own_slots_of_the_services_to_move_are_resumed_not_counted():
    ours = {move_slot_name(16384, "ca"): False, move_slot_name(16384, "kms"): True}
    assert settings_problems(server(max_replication_slots=2, every_slot=ours), ["ca", "kms"]) == []
    # a slot of another unified database (another OID) or another service counts
    others = {move_slot_name(99999, "ca"): False, "debezium": True}
    problems = settings_problems(server(max_replication_slots=2, every_slot={**ours, **others}), ["ca", "kms"])
    assert len(problems) == 1 and "2 other slot(s) exist, leaving 0 free" in problems[0]
    # only the slots not in use are offered for dropping
    assert f"SELECT pg_drop_replication_slot('{move_slot_name(99999, 'ca')}')" in problems[0]
    assert "pg_drop_replication_slot('debezium')" not in problems[0]


def test_without_the_unified_database_no_slot_is_the_collections():
    slots = {move_slot_name(16384, "ca"): False}
    problems = settings_problems(server(target_oid=None, max_replication_slots=1, every_slot=slots), ["ca"])
    assert len(problems) == 1


def test_nothing_to_move_is_ready_whatever_the_server():
    got = assess(server(wal_level="replica", replication=False, superuser=False), {}, [], "offline")
    assert got["ready"] is True and got["problems"] == [] and got["checks"]["slots_needed"] == 0


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        (source(can_create=False), ["lacks CREATE on legacy database 'ca'", "GRANT CREATE ON DATABASE ca TO postgres"]),
        (source(table(owned=False), table("keys", owned=False)), ["certificates, keys", "GRANT admin TO postgres"]),
        (source(table("no_key", primary_key=False)), ["'no_key'", "no replica identity", "add a primary key"]),
        (source(table("nothing", identity="n")), ["'nothing'", "REPLICA IDENTITY NOTHING"]),
    ],
)
def test_what_keeps_a_legacy_database_from_being_published_names_the_object_and_the_fix(facts, words):
    problems = source_problems(facts, "postgres")
    assert len(problems) == 1, problems
    for word in words:
        assert word in problems[0]
    assert problems[0].fix["value"] == "offline"


@pytest.mark.parametrize(("identity", "primary_key"), [("d", True), ("i", False), ("f", False)])
def test_a_table_with_a_replica_identity_may_be_published(identity, primary_key):
    assert source_problems(source(table(identity=identity, primary_key=primary_key)), "postgres") == []


def test_the_problems_of_a_source_count_only_for_a_service_to_move():
    bad = source(table("no_key", primary_key=False))
    assert assess(server(), {"ca": bad}, [], "online")["ready"] is True
    got = assess(server(), {"ca": bad}, ["ca"], "online")
    assert got["ready"] is False and got["checks"]["sources"]["ca"]["without_identity"] == ["no_key"]
    assert got["problems"][0]["fix"]["option"] == "move_mode"


def test_names_an_operator_types_are_quoted_when_psql_needs_it():
    assert shown("lamassu") == "lamassu"
    assert shown("Admin") == '"Admin"' and shown('a"b') == '"a""b"' and shown("my role") == '"my role"'


def test_the_name_pattern_takes_the_underscores_literally():
    assert name_pattern() == "lamassu\\_move\\_%"


def test_a_stale_slot_names_its_retained_wal_and_how_to_drop_it():
    slot = Slot("lamassu_move_16384_ca", "ca", "pgoutput", False, 3 * 1024 * 1024, "0/3000148", "reserved", True)
    text = stale_slot_problem(slot)
    assert "'lamassu_move_16384_ca'" in text and "3.0 MB" in text
    assert "lamassuiot.postgres.rollback" in text and "lamassuiot.postgres.cleanup" in text
    assert "SELECT pg_drop_replication_slot('lamassu_move_16384_ca')" in text


def test_a_publication_without_its_slot_is_a_notice_unless_a_run_holds_the_lock():
    facts = SourceFacts("ca", True, [], ["lamassu_move_16384_ca", "lamassu_move_16384_kms"])
    slots = [Slot("lamassu_move_16384_ca", "ca", "pgoutput", True, 0, None)]
    notices = leftover_publications(server(slots=slots), [facts])
    assert len(notices) == 1 and "'lamassu_move_16384_kms'" in notices[0] and "DROP PUBLICATION" in notices[0]
    assert leftover_publications(server(slots=slots, lock_held=True), [facts]) == []
