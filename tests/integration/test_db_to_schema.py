"""postgres_db_to_schema through Ansible: faithful copies, verification, journal, re-runs, refusals."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

import psycopg2
import pytest
from psycopg2 import sql

from ansible_collections.lamassuiot.postgres.plugins.module_utils.connection import ConnectionParams
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.engine import run_copy
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.request import CopyRequest, staging_name
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import GOOSE_TABLE, JOURNAL_SCHEMA, SERVICES
from tests.harness.ansible import run_module, run_tasks
from tests.harness.catalog import catalog_snapshot, data_checksums, describe_schema, diff_descriptions
from tests.harness.edge import UNSUPPORTED_KINDS, build_edge_database, build_unsupported_database
from tests.harness.fixture import build_legacy

MODULE = "postgres_db_to_schema"
FQCN = f"lamassuiot.postgres.{MODULE}"
INFO = "lamassuiot.postgres.postgres_lamassu_info"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def create_database(cluster, name: str) -> str:
    with contextlib.closing(cluster.connect()) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def query(cluster, database: str, statement, params=None) -> list[tuple]:
    with contextlib.closing(cluster.connect(database)) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


def assert_faithful(cluster, source_db: str, target_db: str, target_schema: str, source_schema: str = "public"):
    with contextlib.closing(cluster.connect(source_db)) as src, contextlib.closing(cluster.connect(target_db)) as tgt:
        differences = diff_descriptions(
            describe_schema(src, source_schema), describe_schema(tgt, target_schema), ("source", "copy")
        )
        assert not differences, "\n".join(differences[:40])
        source_sums, target_sums = data_checksums(src, source_schema), data_checksums(tgt, target_schema)
        assert source_sums == target_sums, "\n".join(diff_descriptions(source_sums, target_sums, ("source", "copy")))


def planned_statements(queries: list[str]) -> list[str]:
    """Statements in a comparable form: sorted, the journal rows (times, OIDs, checksums) cut to their table."""
    journal = f'INTO "{JOURNAL_SCHEMA}".'
    return sorted(q.split(" (", 1)[0] if journal in q else q for q in queries)


def schemas(cluster, database: str) -> set[str]:
    return {name for (name,) in query(cluster, database, "SELECT nspname FROM pg_namespace")}


def journal_rows(cluster, database: str) -> list[tuple]:
    return query(
        cluster,
        database,
        sql.SQL(
            "SELECT source_database, target_schema, status, verify, goose_version, tables FROM {} ORDER BY id"
        ).format(sql.Identifier(JOURNAL_SCHEMA, "db_to_schema_copies")),
    )


@pytest.fixture
def legacy(pg):
    """The six legacy databases at a small scale under a unique prefix, and an empty target database."""
    prefix = unique("lg") + "_"
    summary = build_legacy(pg, scale=0.001, prefix=prefix)
    target = create_database(pg, unique("lamassu"))
    return prefix, summary, target


def test_legacy_copy_all_six_faithful_then_unchanged(pg, legacy):
    prefix, summary, target = legacy
    tasks = [
        {FQCN: {"source_database": prefix + service, "target_schema": service, "target_database": target}}
        for service in SERVICES
    ]

    before = catalog_snapshot(pg.connect(target))
    planned = run_tasks(tasks[:1], pg, check=True).result
    assert planned["changed"] is True and not planned.get("failed"), planned
    plan = planned["plan"]
    assert {t["name"] for t in plan["tables"]} == set(summary[prefix + "ca"]["tables"])
    assert (
        "table certificates" in plan["objects"] and "foreign key fk_serial_number on ca_certificates" in plan["objects"]
    )
    assert plan["staging_schema"] == staging_name("ca") and plan["target_database_exists"] is True
    assert not diff_descriptions(before, catalog_snapshot(pg.connect(target)), ("before", "after check mode"))

    run = run_tasks(tasks, pg)
    for service, result in zip(SERVICES, run.results, strict=True):
        assert result["changed"] is True and not result.get("failed"), result.get("msg")
        expected = summary[prefix + service]
        assert {t["name"]: t["rows"] for t in result["tables"]} == expected["tables"]
        assert all(t["verified"] for t in result["tables"])
        assert result["source"]["goose_version"] == expected["goose_version"]
        assert result["target"] == {"database": target, "schema": service}
        assert result["dsn"]["pgx"].endswith(f"dbname={target} search_path={service}")
        assert result["dsn"]["libpq"].endswith(f"dbname={target} options='-c search_path={service}'")
        assert "password" not in str(result)
        assert_faithful(pg, prefix + service, target, service)
    # Check mode listed the statements the real run executed: the same ones, whatever order the workers took.
    assert planned_statements(planned["queries"]) == planned_statements(run.results[0]["queries"])
    assert planned["queries"][0] == f'CREATE SCHEMA IF NOT EXISTS "{JOURNAL_SCHEMA}"'
    assert f'ALTER SCHEMA "{staging_name("ca")}" RENAME TO "ca"' in planned["queries"]

    # The goose history came along, identity sequence included: a new row continues the numbering.
    ca = prefix + "ca"
    (source_next,) = query(
        pg, ca, sql.SQL("SELECT last_value FROM {}").format(sql.Identifier("goose_db_version_id_seq"))
    )[0]
    inserted = query(
        pg,
        target,
        sql.SQL("INSERT INTO {} (version_id, is_applied) VALUES (1, true) RETURNING id").format(
            sql.Identifier("ca", GOOSE_TABLE)
        ),
    )
    assert inserted[0][0] == source_next + 1
    assert query(
        pg, target, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'ca.certificates'::regclass"
    ) == [("admin",)]

    journal = journal_rows(pg, target)
    assert [(r[0], r[1], r[2], r[3]) for r in journal] == [(prefix + s, s, "published", "checksum") for s in SERVICES]
    assert {t["name"] for t in journal[0][5]} == set(summary[ca]["tables"])
    assert all(t["checksum"] for t in journal[0][5])
    assert not {staging_name(s) for s in SERVICES} & schemas(pg, target)

    again = run_tasks(tasks, pg)
    for result in again.results:
        assert result["changed"] is False and not result.get("failed"), result
        assert result["queries"] == []
        assert result["recorded"]["verify"] == "checksum"
    assert {t["name"]: t["rows"] for t in again.results[0]["tables"]} == summary[ca]["tables"]


@pytest.mark.parametrize("extension_schema", ["public", "extensions"])
def test_edge_database_is_copied_faithfully(pg, extension_schema):
    source = unique("edge")
    build_edge_database(pg, source, extension_schema=extension_schema)
    target = create_database(pg, unique("lamassu"))
    result = run_module(MODULE, {"source_database": source, "target_database": target, "jobs": 3}, pg).result
    assert result["changed"] is True and not result.get("failed"), result.get("msg")
    assert_faithful(pg, source, target, source)
    # Expressions that named the source schema now name the copy.
    defaults = query(
        pg,
        target,
        "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = %s::regclass",
        (f"{source}.parents",),
    )
    assert any(f"{source}.ticket_seq" in d or "ticket_seq" in d for (d,) in defaults)
    assert all("public." not in d for (d,) in defaults)


def test_check_mode_plans_against_a_target_database_not_created_yet(pg):
    """``upgrade.yml --check`` on a fresh host: the schema module would create the database, the copy shows its plan."""
    prefix = unique("cm") + "_"
    summary = build_legacy(pg, scale=0.001, services=["va"], prefix=prefix)
    target = unique("lamassu")
    args = {"source_database": prefix + "va", "target_database": target, "target_schema": "va"}
    cluster_before = query(pg, "postgres", "SELECT datname FROM pg_database ORDER BY 1")
    template_before = catalog_snapshot(pg.connect("template1"))

    planned = run_module(MODULE, args, pg, check=True).result
    assert planned["changed"] is True and not planned.get("failed"), planned.get("msg")
    assert planned["plan"]["target_database_exists"] is False and planned["plan"]["target_exists"] is False
    assert {t["name"] for t in planned["plan"]["tables"]} == set(summary[prefix + "va"]["tables"])
    assert query(pg, "postgres", "SELECT datname FROM pg_database ORDER BY 1") == cluster_before
    assert not diff_descriptions(template_before, catalog_snapshot(pg.connect("template1")), ("before", "after"))

    # Only the plan: a real run, and state=absent even in check mode, still name the missing database.
    for mode in ({"check": False, "extra": {}}, {"check": True, "extra": {"state": "absent"}}):
        refused = run_module(MODULE, {**args, **mode["extra"]}, pg, check=mode["check"]).result
        assert refused.get("failed") and f"target database {target!r} does not exist" in refused["msg"], refused


def test_verify_count_and_none(pg):
    source = unique("edgev")
    build_edge_database(pg, source)
    target = create_database(pg, unique("lamassu"))
    run = run_tasks(
        [
            {
                FQCN: {
                    "source_database": source,
                    "target_database": target,
                    "target_schema": "by_count",
                    "verify": "count",
                }
            },
            {
                FQCN: {
                    "source_database": source,
                    "target_database": target,
                    "target_schema": "unverified",
                    "verify": "none",
                    "jobs": 1,
                }
            },
        ],
        pg,
    )
    counted, unverified = run.results
    assert counted["changed"] and all(t["verified"] for t in counted["tables"]), counted.get("msg")
    assert unverified["changed"] and not any(t["verified"] for t in unverified["tables"]), unverified.get("msg")
    assert_faithful(pg, source, target, "by_count")
    assert_faithful(pg, source, target, "unverified")


@pytest.mark.parametrize("kind", UNSUPPORTED_KINDS)
def test_unsupported_objects_fail_at_plan_time(pg, kind):
    source = unique("unsup")
    name = build_unsupported_database(pg, source, kind)
    target = create_database(pg, unique("lamassu"))
    before = catalog_snapshot(pg.connect(target))
    result = run_module(MODULE, {"source_database": source, "target_database": target}, pg).result
    assert result["failed"] is True
    assert name in result["msg"] and "nothing was copied" in result["msg"], result["msg"]
    assert not diff_descriptions(before, catalog_snapshot(pg.connect(target)), ("before", "after"))


def test_target_holding_empty_lamassu_tables_fail_then_replace(pg, legacy):
    prefix, _summary, target = legacy
    source = prefix + "kms"
    # What a newer Lamassu leaves when it started against the unified database first: empty tables, goose rows.
    query(pg, target, "CREATE SCHEMA kms")
    query(pg, target, "CREATE TABLE kms.kms_keys (key_id text PRIMARY KEY)")
    query(
        pg,
        target,
        "CREATE TABLE kms.goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL)",
    )
    query(pg, target, "INSERT INTO kms.goose_db_version (version_id, is_applied) VALUES (0, true)")
    before = catalog_snapshot(pg.connect(target))

    refused = run_module(MODULE, {"source_database": source, "target_database": target, "target_schema": "kms"}, pg)
    message = refused.result["msg"]
    assert refused.result["failed"] is True
    assert "table kms_keys" in message and "newer Lamassu" in message and "if_target_exists=replace" in message
    assert not diff_descriptions(before, catalog_snapshot(pg.connect(target)), ("before", "after"))

    replaced = run_module(
        MODULE,
        {"source_database": source, "target_database": target, "target_schema": "kms", "if_target_exists": "replace"},
        pg,
    ).result
    assert replaced["changed"] is True and not replaced.get("failed"), replaced.get("msg")
    assert_faithful(pg, source, target, "kms")


def test_target_with_data_is_named_in_refusal(pg, legacy):
    prefix, _summary, target = legacy
    query(pg, target, "CREATE SCHEMA va; CREATE TABLE va.notes (n text); INSERT INTO va.notes VALUES ('keep')")
    result = run_module(
        MODULE, {"source_database": prefix + "va", "target_database": target, "target_schema": "va"}, pg
    )
    assert result.result["failed"] is True
    assert "Tables holding rows: notes" in result.result["msg"]
    assert query(pg, target, "SELECT n FROM va.notes") == [("keep",)]


def test_existing_empty_target_schema_takes_the_owner_of_the_source(pg, legacy):
    """The empty schema of postgres_lamassu_schema (the login user's) is replaced by one owned as the source's
    public (pg_database_owner on PostgreSQL 15+: the legacy database's owner, admin)."""
    prefix, _summary, target = legacy
    setup = run_module("postgres_lamassu_schema", {"database": target, "schemas": ["alerts"]}, pg).result
    assert not setup.get("failed"), setup.get("msg")
    result = run_module(
        MODULE, {"source_database": prefix + "alerts", "target_database": target, "target_schema": "alerts"}, pg
    )
    assert result.result["changed"] is True and not result.result.get("failed"), result.result.get("msg")
    (source_owner,) = query(
        pg, prefix + "alerts", "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'"
    )[0]
    expected = "admin" if source_owner == "pg_database_owner" else source_owner
    assert query(pg, target, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'alerts'") == [
        (expected,)
    ]
    assert_faithful(pg, prefix + "alerts", target, "alerts")


def test_state_absent_removes_only_recorded_copies(pg, legacy):
    prefix, _summary, target = legacy
    args = {"source_database": prefix + "dmsmanager", "target_database": target, "target_schema": "dmsmanager"}
    # Nothing recorded and nothing there: nothing to do.
    first = run_module(MODULE, {**args, "state": "absent"}, pg).result
    assert first["changed"] is False and not first.get("failed"), first.get("msg")

    query(pg, target, "CREATE SCHEMA dmsmanager")
    refused = run_module(MODULE, {**args, "state": "absent"}, pg).result
    assert refused["failed"] is True and "records no copy" in refused["msg"]
    assert "dmsmanager" in schemas(pg, target)
    query(pg, target, "DROP SCHEMA dmsmanager")

    absent = {**args, "state": "absent"}
    run = run_tasks(
        [
            {FQCN: args},
            {FQCN: absent, "check_mode": True},
            {FQCN: absent},
            {FQCN: absent},
        ],
        pg,
    )
    copied, checked, removed, again = run.results
    assert copied["changed"] is True, copied.get("msg")
    assert checked["changed"] is True
    assert checked["queries"][0] == 'DROP SCHEMA "dmsmanager" CASCADE'
    assert planned_statements(checked["queries"]) == planned_statements(removed["queries"])
    # The real run still found the recorded schema: check mode removed nothing.
    assert removed["changed"] is True and not removed.get("failed"), removed.get("msg")
    assert any("DROP SCHEMA" in q for q in removed["queries"])
    assert again["changed"] is False
    assert "dmsmanager" not in schemas(pg, target)
    assert journal_rows(pg, target)[-1][2] == "removed"
    # A copy after removal is a new copy.
    recopied = run_module(MODULE, args, pg).result
    assert recopied["changed"] is True and not recopied.get("failed")


@pytest.mark.parametrize("verify_mode", ["checksum", "count"])
def test_state_absent_refuses_a_copy_that_changed_unless_told_to_discard(pg, legacy, verify_mode):
    prefix, _summary, target = legacy
    args = {"source_database": prefix + "dmsmanager", "target_database": target, "target_schema": "dmsmanager"}
    copied = run_module(MODULE, {**args, "verify": verify_mode, "freeze_source": True}, pg).result
    assert copied["changed"] is True and not copied.get("failed"), copied.get("msg")
    absent = {**args, "state": "absent"}

    def refused_with(*expected: str) -> None:
        before = catalog_snapshot(pg.connect(target))
        for check in (True, False):
            result = run_module(MODULE, absent, pg, check=check).result
            assert result.get("failed") and "Nothing was changed" in result["msg"], result
            assert all(text in result["msg"] for text in expected), result["msg"]
        assert not diff_descriptions(before, catalog_snapshot(pg.connect(target)), ("before", "after"))
        assert query(pg, prefix + "dmsmanager", "SHOW default_transaction_read_only") == [("on",)]

    # An update keeps the row count: only the checksum of a verify=checksum copy sees it.
    query(
        pg,
        target,
        "UPDATE dmsmanager.dms SET name = name || ' (edited)' WHERE id = (SELECT min(id) FROM dmsmanager.dms)",
    )
    if verify_mode == "checksum":
        refused_with("table dms: rows changed since the copy", "discard_changes=true")
    query(pg, target, "INSERT INTO dmsmanager.dms (id, name) VALUES ('issued-after-cutover', 'new')")
    query(pg, target, "CREATE TABLE dmsmanager.added_later (id int)")
    rows = query(pg, prefix + "dmsmanager", "SELECT count(*) FROM public.dms")[0][0]
    refused_with(f"table dms: {rows} rows at the copy, {rows + 1} now", "table added_later was added")

    removed = run_module(MODULE, {**absent, "discard_changes": True}, pg).result
    assert removed["changed"] is True and not removed.get("failed"), removed.get("msg")
    assert "dmsmanager" not in schemas(pg, target)
    assert query(pg, prefix + "dmsmanager", "SHOW default_transaction_read_only") == [("off",)]

    wrong = run_module(MODULE, {**args, "discard_changes": True}, pg).result
    assert wrong.get("failed") and "discard_changes only applies to state=absent" in wrong["msg"]


def test_state_absent_refuses_the_only_copy_of_a_dropped_source(pg, legacy):
    prefix, _summary, target = legacy
    args = {"source_database": prefix + "kms", "target_database": target, "target_schema": "kms"}
    dropped = run_module(MODULE, {**args, "drop_source": True}, pg).result
    assert dropped["changed"] is True and dropped["source"]["dropped"] is True, dropped.get("msg")
    for extra in ({}, {"discard_changes": True}):
        refused = run_module(MODULE, {**args, "state": "absent", **extra}, pg).result
        assert refused.get("failed") and "holds the only copy of its data" in refused["msg"], refused
    assert "kms" in schemas(pg, target)


def test_drop_source_refuses_with_other_sessions_then_drops(pg, legacy):
    prefix, _summary, target = legacy
    source = prefix + "va"
    args = {"source_database": source, "target_database": target, "target_schema": "va", "drop_source": True}
    other = pg.connect(source)
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        refused = run_module(MODULE, args, pg).result
        assert refused["failed"] is True
        assert f"pid {pid}" in refused["msg"] and "Refusing to drop" in refused["msg"]
        assert query(pg, "postgres", "SELECT count(*) FROM pg_database WHERE datname = %s", (source,)) == [(1,)]
    finally:
        other.close()
    # The copy itself was published by the refused run: the next run only drops the source.
    dropped, again = run_tasks([{FQCN: args}, {FQCN: args}], pg).results
    assert dropped["changed"] is True and dropped["source"]["dropped"] is True, dropped.get("msg")
    assert query(pg, "postgres", "SELECT count(*) FROM pg_database WHERE datname = %s", (source,)) == [(0,)]
    assert again["changed"] is False and again["source"]["dropped"] is True and not again.get("failed")
    assert query(pg, target, "SELECT count(*) FROM va.va_role")[0][0] > 0


def test_writes_to_the_source_after_its_copy_are_reported_and_block_its_drop(pg, legacy):
    prefix, _summary, target = legacy
    source = prefix + "ca"
    args = {"source_database": source, "target_database": target, "target_schema": "ca"}
    info = {"database": target, "services": ["ca"], "source_prefix": prefix}
    first, again, facts = run_tasks([{FQCN: args}, {FQCN: args}, {INFO: info}], pg).results
    assert first["changed"] is True and first["source_changed"] is False, first.get("msg")
    assert again["changed"] is False and again["source_changed"] is False and not again.get("warnings")
    assert facts["services"]["ca"]["source_changed"] is False

    # A write the copy does not hold: the service kept writing to its legacy database (no freeze).
    query(
        pg,
        source,
        sql.SQL("UPDATE {0} SET tstamp = tstamp WHERE id = (SELECT min(id) FROM {0})").format(
            sql.Identifier(GOOSE_TABLE)
        ),
    )
    rerun, facts, dropped = run_tasks([{FQCN: args}, {INFO: info}, {FQCN: {**args, "drop_source": True}}], pg).results
    assert rerun["changed"] is False and rerun["source_changed"] is True, rerun
    assert rerun["source_changes"] == [f"table {GOOSE_TABLE}: 1 updates"]
    assert any("changed after its copy" in w and "if_target_exists=replace" in w for w in rerun["warnings"])
    assert facts["services"]["ca"]["source_changed"] is True
    assert facts["services"]["ca"]["source_changes"] == rerun["source_changes"]
    assert any("changed after its copy" in notice for notice in facts["notices"])
    assert dropped["failed"] is True and "Refusing to drop the source database" in dropped["msg"], dropped
    assert "accept_source_changes=true" in dropped["msg"] and "if_target_exists=replace" in dropped["msg"]
    assert query(pg, "postgres", "SELECT count(*) FROM pg_database WHERE datname = %s", (source,)) == [(1,)]

    # The remedy: a new copy over the old one; then the source can go.
    replaced, settled, gone = run_tasks(
        [{FQCN: {**args, "if_target_exists": "replace"}}, {FQCN: args}, {FQCN: {**args, "drop_source": True}}], pg
    ).results
    assert replaced["changed"] is True and replaced["source_changed"] is False, replaced.get("msg")
    assert any(q.startswith('DROP SCHEMA "ca" CASCADE') for q in replaced["queries"])
    assert settled["changed"] is False and settled["source_changed"] is False
    assert gone["changed"] is True and gone["source"]["dropped"] is True, gone.get("msg")
    assert [row[2] for row in journal_rows(pg, target)] == ["removed", "published"]


def test_drop_source_accepts_source_changes_when_told(pg, legacy):
    prefix, _summary, target = legacy
    source = prefix + "va"
    args = {"source_database": source, "target_database": target, "target_schema": "va"}
    assert run_module(MODULE, args, pg).result["changed"] is True
    query(
        pg,
        source,
        sql.SQL("DELETE FROM {} WHERE id = (SELECT max(id) FROM {})").format(
            sql.Identifier(GOOSE_TABLE), sql.Identifier(GOOSE_TABLE)
        ),
    )
    dropped = run_module(MODULE, {**args, "drop_source": True, "accept_source_changes": True}, pg).result
    assert dropped["changed"] is True and dropped["source"]["dropped"] is True, dropped.get("msg")
    assert dropped["source_changes"] == [f"table {GOOSE_TABLE}: 1 deletes"]


def test_check_mode_plans_a_new_copy_and_the_drop_of_its_source(pg, legacy):
    prefix, _summary, target = legacy
    source = prefix + "va"
    args = {"source_database": source, "target_database": target, "target_schema": "va", "drop_source": True}
    planned = run_module(MODULE, args, pg, check=True).result
    assert planned["changed"] is True and not planned.get("failed"), planned.get("msg")
    assert planned["queries"][-3] == f'DROP DATABASE "{source}"'
    assert query(pg, "postgres", "SELECT count(*) FROM pg_database WHERE datname = %s", (source,)) == [(1,)]


def test_drop_source_needs_verification(pg, legacy):
    prefix, _summary, target = legacy
    result = run_module(
        MODULE, {"source_database": prefix + "va", "target_database": target, "drop_source": True, "verify": "none"}, pg
    ).result
    assert result["failed"] is True and "verified copy" in result["msg"]


def test_missing_target_database_and_same_database_are_refused(pg, legacy):
    prefix, _summary, _target = legacy
    missing, same = run_tasks(
        [
            {FQCN: {"source_database": prefix + "va", "target_database": unique("nodb")}},
            {FQCN: {"source_database": prefix + "va", "target_database": prefix + "va"}},
        ],
        pg,
    ).results
    assert missing["failed"] is True and "postgres_lamassu_schema" in missing["msg"]
    assert same["failed"] is True and "both" in same["msg"]


class Writer(threading.Thread):
    """Inserts events one by one, reconnecting after failures; remembers which inserts were acknowledged."""

    def __init__(self, cluster, database: str):
        super().__init__(daemon=True)
        self.cluster, self.database = cluster, database
        self.acknowledged: list[str] = []
        self.refused = 0
        self.stop = threading.Event()

    def run(self) -> None:
        conn = None
        number = 0
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = self.cluster.connect(self.database)
                number += 1
                key = f"writer-{number}"
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO public.events (event_type, total_seen) VALUES (%s, 1)", (key,))
                self.acknowledged.append(key)
            except psycopg2.Error:
                self.refused += 1
                with contextlib.suppress(psycopg2.Error):
                    if conn is not None and conn.closed == 0 and conn.get_transaction_status() != 0:
                        conn.rollback()
                if conn is not None and conn.closed:
                    conn = None
            time.sleep(0.005)
        if conn is not None:
            conn.close()


def test_freeze_source_refuses_writers_and_keeps_acknowledged_writes(pg, legacy):
    prefix, _summary, target = legacy
    source = prefix + "alerts"
    args = {"source_database": source, "target_database": target, "target_schema": "alerts", "freeze_source": True}
    writer = Writer(pg, source)
    writer.start()
    while len(writer.acknowledged) < 5:
        time.sleep(0.01)
    try:
        planned = run_module(MODULE, args, pg, check=True).result
        freeze = f'ALTER DATABASE "{source}" SET "default_transaction_read_only" = on'
        assert freeze in planned["queries"] and any("pg_terminate_backend" in q for q in planned["queries"]), planned
        assert writer.refused == 0, "check mode froze nothing"
        frozen = run_module(MODULE, args, pg).result
        assert frozen["changed"] is True and frozen["source"]["frozen"] is True, frozen.get("msg")
        assert freeze in frozen["queries"] and any("pg_terminate_backend" in q for q in frozen["queries"])
        refused_during_run = writer.refused
        acknowledged = list(writer.acknowledged)
        time.sleep(0.3)
        assert writer.acknowledged == acknowledged, "no write is acknowledged once the copy has run"
        assert writer.refused > refused_during_run, "the writer keeps trying and keeps being refused"
    finally:
        writer.stop.set()
        writer.join()
    copied = {
        key for (key,) in query(pg, target, "SELECT event_type FROM alerts.events WHERE event_type LIKE 'writer-%%'")
    }
    assert copied == set(acknowledged), "every write acknowledged before the freeze is in the copy, and only those"
    with (
        contextlib.closing(pg.connect(source)) as late,
        late.cursor() as cur,
        pytest.raises(psycopg2.errors.ReadOnlySqlTransaction),
    ):
        cur.execute("DELETE FROM public.events")

    rerun = run_module(MODULE, args, pg).result
    assert rerun["changed"] is False and rerun["source"]["frozen"] is True
    assert rerun["source_changed"] is False, "the writes before the freeze are in the copy: " + str(rerun)

    lifted = run_module(MODULE, {**args, "state": "absent"}, pg).result
    assert lifted["changed"] is True and lifted["source"]["frozen"] is False, lifted.get("msg")
    with contextlib.closing(pg.connect(source)) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM public.events WHERE event_type LIKE 'writer-%%'")
        assert cur.rowcount == len(acknowledged)
    settings = query(
        pg,
        "postgres",
        "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s",
        (source,),
    )
    assert settings == [(0,)], "the freeze is lifted exactly: no database setting remains"


ROLE_MODES = {
    "sequential": {},  # the default: one copy after the other
    "sequential-async": {"db_to_schema_async": 600, "db_to_schema_poll": 1},
    "parallel": {"db_to_schema_parallel": True},  # every copy an asynchronous job, all at once
}


@pytest.mark.parametrize("mode", ROLE_MODES)
def test_role_copies_the_services_then_reports_them_already_copied(pg, mode):
    prefix = unique("rl") + "_"
    build_legacy(pg, scale=0.001, services=["va", "kms"], prefix=prefix)
    target = unique("lamassu")
    role = {
        "ansible.builtin.include_role": {"name": "lamassuiot.postgres.db_to_schema"},
        "vars": {
            "db_to_schema_services": ["va", "kms"],
            "db_to_schema_database": target,
            "db_to_schema_source_prefix": prefix,
            "db_to_schema_owner": "admin",
            "db_to_schema_freeze_source": True,
            **ROLE_MODES[mode],
        },
    }
    first = run_tasks([role], pg, verbosity=1)  # the per-table lines are shown at -v
    assert first.rc == 0, first.output
    assert "va: copied" in first.output and "kms: copied" in first.output, first.output
    assert ("ASYNC OK on localhost" in first.output) is (mode == "sequential-async"), first.output
    # Copies in the background (all of them in parallel) are waited for by a task that the others never reach.
    waited = "TASK [lamassuiot.postgres.db_to_schema : Wait for the copies in the background, printing their progress]"
    assert (waited in first.output) is (mode == "parallel"), first.output
    if mode == "parallel":
        section = first.output.split(waited, 1)[1].split("TASK [", 1)[0]
        assert "changed: [localhost]" in section, section
    assert "copied,\\n" not in first.output, first.output
    for service in ("va", "kms"):  # the per-table summary
        for (table,) in query(pg, prefix + service, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
            assert f'"{service}.{table}: ' in first.output, (table, first.output)
    for service in ("va", "kms"):
        assert_faithful(pg, prefix + service, target, service)
        owner = query(pg, target, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (service,))
        assert owner == [("admin",)]
    second = run_tasks([role], pg)
    assert second.rc == 0, second.output
    assert "va: already copied" in second.output and "kms: already copied" in second.output, second.output
    assert "source frozen" in second.output
    assert len(journal_rows(pg, target)) == 2


def test_non_public_source_schema_and_references_outside_it(pg):
    source = create_database(pg, unique("app"))
    target = create_database(pg, unique("lamassu"))
    query(
        pg,
        source,
        """
        CREATE SCHEMA app;
        CREATE TABLE app.owners (id serial PRIMARY KEY, name text NOT NULL);
        CREATE TABLE app.things (id bigserial PRIMARY KEY, owner_id int REFERENCES app.owners (id), v numeric(8, 2));
        INSERT INTO app.owners (name) VALUES ('a'), ('b');
        INSERT INTO app.things (owner_id, v) VALUES (1, 1.5), (2, NULL), (NULL, -3);
        CREATE VIEW app.owner_things AS SELECT o.name, t.v FROM app.owners o JOIN app.things t ON t.owner_id = o.id;
        """,
    )
    args = {"source_database": source, "source_schema": "app", "target_database": target, "target_schema": "svc"}
    copied = run_module(MODULE, args, pg).result
    assert copied["changed"] is True and not copied.get("failed"), copied.get("msg")
    assert_faithful(pg, source, target, "svc", source_schema="app")

    query(
        pg,
        source,
        """
        CREATE TABLE public.shared (id int PRIMARY KEY);
        CREATE TABLE app.linked (id int PRIMARY KEY, shared_id int REFERENCES public.shared (id));
        CREATE VIEW app.shared_view AS SELECT id FROM public.shared;
        """,
    )
    refused = run_module(MODULE, {**args, "target_schema": "svc2"}, pg).result
    assert refused["failed"] is True
    assert "foreign key to another schema linked_shared_id_fkey" in refused["msg"], refused["msg"]
    assert "view using a relation of another schema shared_view uses public.shared" in refused["msg"]
    assert "svc2" not in schemas(pg, target)


def test_progress_log_shows_each_table_starting_and_ending(pg):
    prefix = unique("lg") + "_"
    build_legacy(pg, scale=0.001, services=["va"], prefix=prefix)
    target = create_database(pg, unique("lamassu"))
    params = ConnectionParams.from_module_params(pg.module_defaults())
    request = CopyRequest(source_database=prefix + "va", target_database=target, target_schema="va")
    lines: list[str] = []
    result = run_copy(params, request, log=lines.append)
    assert all(line.startswith(f"db_to_schema {prefix}va.public -> {target}.va: ") for line in lines), lines
    tables = [table["name"] for table in result["tables"]]
    assert tables and "goose_db_version" in tables
    for name in tables:
        started = [n for n, line in enumerate(lines) if f": table {name}: started (" in line]
        ended = [n for n, line in enumerate(lines) if f": table {name}: " in line and line.endswith(", verified")]
        assert len(started) == 1 and len(ended) == 1 and started[0] < ended[0], (name, lines)
    assert " copying " in lines[0] and " published in " in lines[-1], lines
    again: list[str] = []
    assert run_copy(params, request, log=again.append)["changed"] is False
    assert len(again) == 1 and "already copied" in again[0], again
