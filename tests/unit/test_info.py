"""The pure rules of postgres_lamassu_info: phases, problems, durations, where the server runs."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils._compat import zip_strict
from ansible_collections.lamassuiot.postgres.plugins.module_utils.connection import ConnectionParams
from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.info import is_local, measure_disk
from ansible_collections.lamassuiot.postgres.plugins.module_utils.info_rules import (
    DiskFacts,
    InfoRequest,
    LegacyFacts,
    MigrationFacts,
    OtherDatabaseFacts,
    SchemaFacts,
    ServerFacts,
    UnifiedFacts,
    assess,
    cleanup_blockers,
    cleanup_decision,
    cutover_blockers,
    duration_between,
    empty_schemas,
    recorded_schemas,
    service_phase,
    upgrade_done,
)

COPY = {"goose_version": 20250101000000}


@pytest.mark.parametrize(
    ("legacy_exists", "copy", "schema_version", "pending", "phase"),
    [
        (True, None, None, None, "legacy"),
        (False, None, None, None, "legacy"),  # missing and never copied: still legacy (and a problem)
        (True, None, 20260101000000, 0, "legacy"),  # a schema that is no recorded copy does not count
        (True, COPY, 20250101000000, None, "copied"),
        (True, COPY, 20250101000000, 2, "copied"),
        (True, COPY, 20260101000000, None, "migrated"),  # moved past the copied version
        (True, COPY, 20250101000000, 0, "migrated"),  # files given and nothing pending
        (True, COPY, 20260101000000, 1, "copied"),  # files given: one still pending is not at the target
        (False, COPY, 20250101000000, None, "cleaned"),
        (False, COPY, 20260101000000, 0, "cleaned"),
        (True, {"goose_version": None}, None, None, "copied"),  # a source without goose table
    ],
)
def test_service_phase(legacy_exists, copy, schema_version, pending, phase):
    assert service_phase(legacy_exists, copy, schema_version, pending) == phase


COPIED = 20250101000000
NEWER = 20260101000000


def check(goose_version: int, pending: int = 0) -> dict:
    """A migration_checks record as info reads it."""
    return {"tree_digest": "d", "newest_version": NEWER, "goose_version": goose_version, "pending": pending}


@pytest.mark.parametrize(
    ("legacy_exists", "schema_version", "pending", "recorded", "phase"),
    [
        # Without the tree: a record that still holds says migrated, even when the copy was the newest version.
        (True, COPIED, None, check(COPIED), "migrated"),
        (True, NEWER, None, check(NEWER), "migrated"),
        # A record no longer matching the schema (a down since): the version rule decides.
        (True, COPIED, None, check(NEWER), "copied"),
        (True, NEWER, None, check(20270101000000), "migrated"),  # still past the copied version
        (True, COPIED, None, check(COPIED, pending=1), "copied"),  # never written so, but not trusted
        (True, None, None, check(COPIED), "copied"),  # no goose table in the schema any more
        (True, COPIED, None, None, "copied"),  # no record: the version rule
        # With the tree, the tree decides whatever the record says.
        (True, COPIED, 1, check(COPIED), "copied"),
        (True, COPIED, 0, check(NEWER), "migrated"),
        # The record does not bring back a legacy or cleaned service.
        (False, COPIED, None, check(COPIED), "cleaned"),
    ],
)
def test_service_phase_with_a_migration_check(legacy_exists, schema_version, pending, recorded, phase):
    copy = {"goose_version": COPIED}
    assert service_phase(legacy_exists, copy, schema_version, pending, recorded) == phase
    assert service_phase(legacy_exists, None, schema_version, pending, recorded) == "legacy"


@pytest.mark.parametrize(
    ("started", "finished", "seconds"),
    [
        ("2026-01-01 10:00:00+00", "2026-01-01 10:00:02.5+00", 2.5),
        ("2026-01-01 10:00:00.123456+02", "2026-01-01 08:00:01.123456+00", 1.0),
        ("2026-01-01 10:00:00+05:30", "2026-01-01 10:01:00+05:30", 60.0),
        (None, "2026-01-01 10:00:00+00", None),
        ("garbage", "2026-01-01 10:00:00+00", None),
    ],
)
def test_duration_between(started, finished, seconds):
    assert duration_between(started, finished) == seconds


@pytest.mark.parametrize(
    ("kwargs", "local"),
    [
        ({}, True),
        ({"host": "localhost"}, True),
        ({"host": "127.0.0.1"}, True),
        ({"host": "::1"}, True),
        ({"host": "/var/run/postgresql"}, True),
        ({"host": "db.example.com", "unix_socket": "/tmp"}, True),
        ({"host": "db.example.com"}, False),
        ({"host": "10.0.0.5"}, False),
    ],
)
def test_is_local(kwargs, local):
    assert is_local(ConnectionParams(**kwargs)) is local


def test_disk_is_not_measured_for_a_remote_server():
    disk = measure_disk(ConnectionParams(host="db.example.com"), "/", 1000, 1.5)
    assert (disk.checked, disk.needed_bytes) == (False, 1500)
    assert "not on the managed host" in disk.reason


def test_disk_is_measured_on_the_local_data_directory(tmp_path):
    disk = measure_disk(ConnectionParams(host="127.0.0.1"), str(tmp_path), 10, 2.0)
    assert disk.checked and disk.path == str(tmp_path) and disk.free_bytes > 0 and disk.needed_bytes == 20


@pytest.mark.parametrize(
    ("data_directory", "reason"),
    [(None, "data_directory setting"), ("/nonexistent/lamassu/data", "not on the managed host")],
)
def test_disk_unknown_says_why(data_directory, reason):
    disk = measure_disk(ConnectionParams(), data_directory, 10, 1.5)
    assert not disk.checked and reason in disk.reason


def test_nothing_to_copy_needs_no_disk():
    assert measure_disk(ConnectionParams(), "/", 0, 1.5).reason == "nothing left to copy"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"services": ("ca", "ca")}, "twice"),
        ({"database": ""}, "empty"),
        ({"disk_margin": 0.5}, "disk_margin"),
        ({"services": ("pg_ca",)}, "pg_"),
    ],
)
def test_invalid_requests_are_refused(kwargs, fragment):
    request = InfoRequest(**{"database": "lamassu", "services": ("ca",), **kwargs})
    with pytest.raises(InvalidInput, match=fragment):
        request.validate()


def _server(**overrides) -> ServerFacts:
    values = {
        "version": "15.8",
        "version_num": 150008,
        "encoding": "UTF8",
        "max_connections": 100,
        "data_directory": "/data",
        "login_user": "lamassu",
        "superuser": False,
        "createdb": True,
    }
    return ServerFacts(**{**values, **overrides})


def _assess(
    server=None, legacy=None, schemas=None, unified_exists=False, migrations=None, disk=None, others=(), **request
):
    services = ("ca", "va")
    req = InfoRequest(database="lamassu", services=services, **request)
    legacy = {
        **{s: LegacyFacts(database=s, exists=True, owner="lamassu", owned=True) for s in services},
        **(legacy or {}),
    }
    unified = UnifiedFacts("lamassu", exists=unified_exists, can_create=True, schemas=schemas or {})
    phases = {
        s: service_phase(legacy[s].exists, unified.schemas.get(s, SchemaFacts()).copy, None, None) for s in services
    }
    return assess(req, server or _server(), legacy, unified, phases, migrations or {}, disk or DiskFacts(), others)


def test_a_ready_server_has_no_problem():
    assert _assess() == ([], [])


def test_every_problem_is_reported_at_once():
    problems, _warnings = _assess(
        server=_server(version="12.9", version_num=120009, createdb=False),
        legacy={
            "ca": LegacyFacts(database="ca", exists=False),
            "va": LegacyFacts(database="va", exists=True, owner="admin", owned=False),
        },
        migrations={
            "va": MigrationFacts(found=True, pending=[{"version": 20270101000000, "name": "x.go", "kind": "go"}])
        },
        disk=DiskFacts(checked=True, path="/data", free_bytes=10, needed_bytes=100),
    )
    expected = ["too old", "CREATEDB", "'ca' is missing", "member of 'admin'", "Go migrations", "free disk space"]
    assert len(problems) == len(expected)
    for fragment, problem in zip_strict(expected, problems):
        assert fragment in problem


@pytest.mark.parametrize(("mode", "is_problem"), [("fail", True), ("replace", False)])
def test_an_occupied_schema_is_a_problem_unless_it_will_be_replaced(mode, is_problem):
    occupied = {"ca": SchemaFacts(exists=True, objects=["certificates"])}
    problems, warnings = _assess(schemas=occupied, unified_exists=True, if_target_exists=mode)
    found = problems if is_problem else warnings
    assert len(found) == 1 and "occupied" in found[0] and "certificates" in found[0]


def test_an_empty_schema_or_a_recorded_copy_is_not_occupied():
    schemas = {"ca": SchemaFacts(exists=True), "va": SchemaFacts(exists=True, objects=["va_role"], copy=COPY)}
    assert _assess(schemas=schemas, unified_exists=True) == ([], [])


def test_a_copied_service_needs_no_legacy_database_nor_its_ownership():
    schemas = {s: SchemaFacts(exists=True, objects=["t"], copy=COPY) for s in ("ca", "va")}
    legacy = {
        "ca": LegacyFacts(database="ca", exists=False),
        "va": LegacyFacts(database="va", exists=True, owned=False),
    }
    assert _assess(legacy=legacy, schemas=schemas, unified_exists=True) == ([], [])


def test_a_superuser_needs_neither_createdb_nor_ownership():
    legacy = {"va": LegacyFacts(database="va", exists=True, owner="admin", owned=False)}
    assert _assess(server=_server(superuser=True, createdb=False), legacy=legacy) == ([], [])


def test_unknown_free_space_is_a_warning_only_when_something_is_left_to_copy():
    problems, warnings = _assess(disk=DiskFacts(needed_bytes=100, reason="remote server"))
    assert problems == [] and warnings == ["free disk space for the copy was not checked: remote server"]
    assert _assess(disk=DiskFacts(needed_bytes=0, reason="nothing left to copy")) == ([], [])


def test_other_sessions_on_a_legacy_database_are_a_warning():
    legacy = {"ca": LegacyFacts(database="ca", exists=True, owned=True, other_sessions=["pid 1 user x"])}
    problems, warnings = _assess(legacy=legacy)
    assert problems == [] and "1 other session" in warnings[0]


def test_pending_from_files_listed_on_the_controller():
    from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.store import History, HistoryRow
    from ansible_collections.lamassuiot.postgres.plugins.module_utils.info import read_migrations

    history = History((HistoryRow(1, 0), HistoryRow(2, 10), HistoryRow(3, 30)))
    listed = ("va/10_a.sql", "va/20_b.go", "va/30_c.sql", "va/40_d.go", "va/40_d.py", "ca/50_e.go", "va/sub/60_f.go")
    found = read_migrations("/controller/only", "va", history, listed)
    assert found.found and not found.error
    assert [(p["version"], p["kind"]) for p in found.pending] == [(20, "go"), (40, "py")]
    assert found.blocked_go == [20]  # older than the current version and never applied: still blocked
    assert read_migrations("/controller/only", "kms", history, listed) == MigrationFacts()


def _entry(phase: str, verified: bool = True, source_changed: bool | None = False, changes=()) -> dict:
    return {"phase": phase, "verified": verified, "source_changed": source_changed, "source_changes": list(changes)}


UPDATES = "table goose_db_version: 1 updates"
REMEDY = (
    "copy it again (-e db_to_schema_if_target_exists=replace) or accept losing the writes "
    "(-e lamassu_accept_source_changes=true)"
)


@pytest.mark.parametrize(
    ("entry", "sessions", "accept", "blockers"),
    [
        (_entry("cleaned"), [], False, []),
        (_entry("cleaned", source_changed=None), ["1234"], False, []),  # gone already: nothing to block
        (
            _entry("legacy", verified=False, source_changed=None),
            ["1234"],
            False,
            ["service 'va' is not copied yet (phase legacy)"],
        ),
        (_entry("copied"), [], False, []),
        (_entry("migrated"), [], False, []),
        (_entry("copied", verified=False), [], False, ["the recorded copy of service 'va' was not verified"]),
        (_entry("migrated"), ["1234"], False, ["other sessions are connected to legacy database 'old_va'"]),
        (
            _entry("copied", source_changed=True, changes=[UPDATES]),
            [],
            False,
            [f"service 'va' took writes after its copy ({UPDATES}); {REMEDY}"],
        ),
        (_entry("copied", source_changed=True, changes=[UPDATES]), [], True, []),  # the loss is accepted
        (_entry("copied", source_changed=None), [], False, []),  # no statistics to compare
        (
            _entry("copied", verified=False, source_changed=True, changes=[UPDATES]),
            ["1234"],
            True,
            [
                "the recorded copy of service 'va' was not verified",
                "other sessions are connected to legacy database 'old_va'",
            ],
        ),
    ],
)
def test_cleanup_blockers_of_one_service(entry, sessions, accept, blockers):
    legacy = {"database": "old_va", "other_sessions": sessions}
    assert list(cleanup_blockers("va", entry, legacy, accept).values()) == blockers


@pytest.mark.parametrize(
    ("phases", "unverified", "busy", "changed", "droppable", "blockers"),
    [
        ({"ca": "copied", "va": "migrated"}, (), (), (), ["ca", "va"], []),
        ({"ca": "cleaned", "va": "cleaned"}, (), (), (), [], []),
        ({"ca": "cleaned", "va": "copied"}, (), (), (), ["va"], []),
        (
            {"ca": "legacy", "kms": "copied", "va": "legacy"},
            ("kms",),
            (),
            (),
            ["kms"],
            [
                "service 'ca' is not copied yet (phase legacy)",
                "service 'va' is not copied yet (phase legacy)",
                "the recorded copy of service 'kms' was not verified",
            ],
        ),
        (  # by kind first, then in the order of the services
            {"va": "copied", "ca": "copied"},
            ("ca",),
            ("va", "ca"),
            ("va",),
            ["va", "ca"],
            [
                "the recorded copy of service 'ca' was not verified",
                "other sessions are connected to legacy database 'va'",
                "other sessions are connected to legacy database 'ca'",
                f"service 'va' took writes after its copy ({UPDATES}); {REMEDY}",
            ],
        ),
    ],
)
def test_cleanup_decision(phases, unverified, busy, changed, droppable, blockers):
    services = {
        s: _entry(
            phase, verified=s not in unverified, source_changed=s in changed, changes=[UPDATES] if s in changed else []
        )
        for s, phase in phases.items()
    }
    legacy = {s: {"database": s, "other_sessions": ["1"] if s in busy else []} for s in phases}
    decision = cleanup_decision(services, legacy, accept_source_changes=False)
    assert decision["droppable"] == droppable
    assert decision["databases"] == droppable
    assert decision["blockers"] == blockers
    assert sorted(b for found in decision["services"].values() for b in found) == sorted(blockers)


@pytest.mark.parametrize(
    ("services", "accept", "expected"),
    [
        ({"ca": {"source_changed": False}, "va": {"source_changed": None}}, False, []),
        (
            {"ca": {"source_changed": True, "source_changes": ["table certificates: 2 inserts"]}},
            False,
            ["the legacy database of service 'ca' took writes after its copy (table certificates: 2 inserts); "],
        ),
        ({"ca": {"source_changed": True, "source_changes": ["table certificates: 2 inserts"]}}, True, []),
    ],
)
def test_cutover_blockers(services, accept, expected):
    found = cutover_blockers(services, accept)
    assert [text[: len(want)] for text, want in zip_strict(found, expected)] == expected
    assert all("-e lamassu_accept_source_changes=true" in text for text in found)


def test_empty_schemas_are_only_those_holding_nothing_and_no_copy():
    schemas = {
        "ca": {"exists": True, "copy": None, "objects": []},
        "va": {"exists": True, "copy": {"id": 1}, "objects": ["goose_db_version"]},
        "kms": {"exists": True, "copy": None, "objects": ["leftover"]},
        "alerts": {"exists": False, "copy": None, "objects": []},
    }
    assert empty_schemas(schemas) == ["ca"]


def test_recorded_schemas_copies_first_then_freezes_only():
    schemas = {
        "ca": {"copy": None, "freeze_recorded": True},
        "va": {"copy": {"id": 1}, "freeze_recorded": True},
        "kms": {"copy": None, "freeze_recorded": False},
    }
    assert recorded_schemas(schemas) == ["va", "ca"]


@pytest.mark.parametrize(
    ("server", "request_options", "fragment"),
    [
        ({"in_recovery": True}, {}, "the server is a standby"),
        ({"pooler": "pgpool-II 4.4.2"}, {}, "goes through pgpool-II 4.4.2"),
        ({"pooler": "pgpool-II 4.4.2", "listen_port": 5432, "connected_port": 9999}, {}, "goes through pgpool-II"),
        ({"listen_port": 5432, "connected_port": 6432}, {}, "used port 6432 but the server listens on port 5432"),
        ({"listen_port": 5432, "connected_port": 6432}, {"proxy_check": False}, None),
        ({"listen_port": 5432, "connected_port": 5432}, {}, None),
        ({"listen_port": 5432, "connected_port": None}, {}, None),  # a Unix socket
    ],
)
def test_a_standby_or_an_indirect_connection_is_a_problem(server, request_options, fragment):
    problems, _warnings = _assess(server=_server(**server), **request_options)
    if fragment is None:
        assert problems == []
    else:
        assert len(problems) == 1 and fragment in problems[0]
        assert "exported snapshots, session advisory locks and pg_terminate_backend" in problems[0]


@pytest.mark.parametrize(
    ("other", "problem", "warning"),
    [
        (OtherDatabaseFacts("pki", service_schemas={"ca": 3, "va": 0}), "ca (3 tables), va (0 tables)", None),
        (OtherDatabaseFacts("pki"), None, "holds no Lamassu service schema"),
        (OtherDatabaseFacts("pki", error="permission denied"), None, "cannot be read: permission denied"),
    ],
)
def test_the_other_unified_database_name(other, problem, warning):
    problems, warnings = _assess(others=[other])
    assert [problem in p for p in problems] == ([True] if problem else [])
    assert [warning in w for w in warnings] == ([True] if warning else [])
    if problem:
        assert "Set lamassu_pg_database: pki" in problems[0]


@pytest.mark.parametrize(
    ("pending", "current", "allow_missing", "out_of_order"),
    [
        ([20250101000000, 20270101000000], 20260101000000, False, "20250101000000"),
        ([20250101000000], 20260101000000, True, None),
        ([20270101000000], 20260101000000, False, None),
        ([1], 0, False, None),
    ],
)
def test_pending_migrations_older_than_the_current_version(pending, current, allow_missing, out_of_order):
    facts = MigrationFacts(
        found=True,
        pending=[{"version": v, "name": f"{v}_x.sql", "kind": "sql"} for v in pending],
        current_version=current,
    )
    problems, _warnings = _assess(migrations={"ca": facts}, allow_missing=allow_missing)
    if out_of_order is None:
        assert problems == []
    else:
        assert len(problems) == 1 and f"older than its current version {current}: {out_of_order};" in problems[0]


def test_pending_go_migrations_name_the_remedy():
    facts = MigrationFacts(found=True, pending=[{"version": 20270101000000, "name": "x.go", "kind": "go"}])
    problems, _warnings = _assess(migrations={"va": facts})
    assert problems == [
        "service 'va' has pending Go migrations without a Python port, which cannot be run: 20270101000000; "
        "upgrade Lamassu within the legacy layout first (its goose-lamassu Job runs them), or add a .py port of each"
    ]


@pytest.mark.parametrize(
    ("phases", "changed", "problems", "done"),
    [
        (["migrated", "cleaned"], [False, None], [], True),
        (["migrated", "copied"], [False, False], [], False),
        (["migrated", "legacy"], [False, None], [], False),
        (["migrated", "migrated"], [False, True], [], False),  # a source written after its copy: copy again
        (["migrated"], [False], ["a problem"], False),
        ([], [], [], True),
    ],
)
def test_upgrade_done(phases, changed, problems, done):
    services = {f"s{i}": {"phase": p, "source_changed": c} for i, (p, c) in enumerate(zip_strict(phases, changed))}
    assert upgrade_done(services, problems) is done


def test_problems_that_one_option_gets_past_carry_that_fix():
    occupied = {"ca": SchemaFacts(exists=True, objects=["certificates"])}
    problems, _warnings = _assess(schemas=occupied, unified_exists=True, if_target_exists="fail")
    assert problems[0].fix == {"option": "if_target_exists", "value": "replace", "why": "the copy replaces them"}
    facts = MigrationFacts(
        found=True, pending=[{"version": 1, "name": "1_x.sql", "kind": "sql"}], current_version=20260101000000
    )
    problems, _warnings = _assess(migrations={"ca": facts})
    assert problems[0].fix["option"] == "allow_missing" and problems[0].fix["value"] is True
    missing = {"ca": LegacyFacts(database="ca", exists=False)}
    problems, _warnings = _assess(legacy=missing)
    assert problems and all(getattr(p, "fix", None) is None for p in problems)
