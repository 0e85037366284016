"""postgres_db_to_schema online=live/switch through Ansible on a real server (wal_level=logical): a copy made while
a writer keeps writing, then the switch; a kill in the apply and a re-run; a structure change refused; the live
move removed with state=absent; check mode. Every test ends with no slot and no publication of the collection."""

from __future__ import annotations

import contextlib
import threading
import uuid

import pytest
from psycopg2 import sql

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import MOVE_PREFIX
from tests.harness.ansible import run_module
from tests.harness.catalog import data_checksums
from tests.harness.fixture import build_legacy
from tests.integration.test_db_to_schema_interrupt import PausedRun, query, unique

MODULE = "postgres_db_to_schema"
# The writer's pause between transactions: the services' steady rate (about 100 transactions/s), not a flood.
PACE_SECONDS = 0.01


def slots(cluster, source: str) -> list[tuple]:
    """The collection's slots on the source database, and its publications there."""
    found = query(
        cluster,
        "postgres",
        "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s AND database = %s",
        (MOVE_PREFIX.replace("_", r"\_") + "%", source),
    )
    found += query(cluster, source, "SELECT pubname FROM pg_publication")
    return found


class Writer:
    """Inserts, updates and deletes certificates in transactions of two or three statements, at a steady pace,
    until stopped; what the server acknowledged is then in the source, which the copy must equal."""

    def __init__(self, cluster, database: str):
        self.conn = cluster.connect(database, autocommit=False)
        self.stop = threading.Event()
        self.committed = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        mine: list[str] = []
        with self.conn.cursor() as cur:
            while not self.stop.is_set():
                serial = uuid.uuid4().hex
                cur.execute(
                    "INSERT INTO certificates (serial_number, status, valid_from, metadata) VALUES (%s, 'ACTIVE', "
                    "now(), %s)",
                    (serial, '{"issued": "online"}'),
                )
                cur.execute(
                    "UPDATE certificates SET status = 'REVOKED', revocation_timestamp = now() WHERE serial_number = "
                    "(SELECT serial_number FROM certificates WHERE status <> 'REVOKED' ORDER BY random() LIMIT 1)"
                )
                if len(mine) > 3:
                    cur.execute("DELETE FROM certificates WHERE serial_number = %s", (mine.pop(0),))
                self.conn.commit()
                mine.append(serial)
                self.committed += 1
                self.stop.wait(PACE_SECONDS)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)
        self.conn.close()


@pytest.fixture
def move(pg):
    """A legacy ``ca`` database, an empty target database and the module arguments; no slot left afterwards."""
    prefix = unique("om") + "_"
    build_legacy(pg, scale=0.002, services=["ca"], prefix=prefix)
    target = unique("lamassu")
    query(pg, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
    args = {"source_database": prefix + "ca", "target_database": target, "target_schema": "ca"}
    yield args
    left = slots(pg, args["source_database"])
    for (name,) in query(
        pg, "postgres", "SELECT slot_name FROM pg_replication_slots WHERE database = %s", (args["source_database"],)
    ):
        query(pg, "postgres", "SELECT pg_drop_replication_slot(%s)", (name,))
    assert left == [], f"left behind: {left}"


def published_equals_source(pg, args) -> None:
    with (
        contextlib.closing(pg.connect(args["source_database"])) as source,
        contextlib.closing(pg.connect(args["target_database"])) as target,
    ):
        assert data_checksums(target, "ca") == data_checksums(source, "public")


def test_a_copy_made_while_a_writer_writes_holds_every_acknowledged_change_after_the_switch(pg, move):
    with Writer(pg, move["source_database"]) as writer:
        live = run_module(MODULE, {**move, "online": "live"}, pg).result
        assert live.get("failed") is not True, live
        assert live["changed"] is True
        assert live["online"]["phase"] == "live"
        again = run_module(MODULE, {**move, "online": "live"}, pg).result  # resumes: applies what came since
        assert again.get("failed") is not True, again
        assert again["online"]["applied"]["transactions"] > 0
    assert writer.committed > 0
    switch = run_module(MODULE, {**move, "online": "switch"}, pg).result
    assert switch.get("failed") is not True, switch
    assert switch["online"]["published"] is True
    assert switch["source"]["frozen"] is True
    published_equals_source(pg, move)
    assert slots(pg, move["source_database"]) == []
    rerun = run_module(MODULE, {**move, "online": "switch"}, pg).result
    assert rerun["changed"] is False, rerun


def test_check_mode_lists_the_slot_publication_and_stream_and_changes_nothing(pg, move):
    result = run_module(MODULE, {**move, "online": "live"}, pg, check=True).result
    assert result.get("failed") is not True, result
    text = "\n".join(result["queries"])
    assert "CREATE PUBLICATION" in text and "CREATE_REPLICATION_SLOT" in text and "START_REPLICATION" in text
    assert slots(pg, move["source_database"]) == []
    assert query(pg, move["target_database"], "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'lamassu%%'") == []


def test_a_structure_change_during_the_live_phase_refuses_the_switch_and_drops_the_slot(pg, move):
    live = run_module(MODULE, {**move, "online": "live"}, pg).result
    assert live.get("failed") is not True, live
    query(pg, move["source_database"], "CREATE INDEX certificates_by_status ON certificates (status)")
    switch = run_module(MODULE, {**move, "online": "switch"}, pg).result
    assert switch.get("failed") is True
    assert "structure of source database" in switch["msg"], switch["msg"]
    assert query(pg, move["target_database"], "SELECT 1 FROM pg_namespace WHERE nspname = 'ca'") == []
    query(
        pg,
        "postgres",
        sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(
            sql.Identifier(move["source_database"])
        ),
    )


def test_state_absent_during_the_live_phase_drops_slot_publication_and_staging(pg, move):
    before = query(pg, move["source_database"], "SELECT count(*) FROM certificates")
    live = run_module(MODULE, {**move, "online": "live"}, pg).result
    assert live.get("failed") is not True, live
    assert slots(pg, move["source_database"]) != []
    gone = run_module(MODULE, {**move, "state": "absent"}, pg).result
    assert gone.get("failed") is not True, gone
    assert gone["changed"] is True
    assert slots(pg, move["source_database"]) == []
    assert query(pg, move["source_database"], "SELECT count(*) FROM certificates") == before


@pytest.mark.parametrize(
    ("online", "point"),
    [
        ("live", "data"),  # before the first apply: the copy is not made, a re-run starts again
        ("live", "apply"),  # mid-transaction in the apply of the live phase
        ("switch", "apply"),  # mid-transaction in the switch, the source frozen
        ("switch", "publish"),  # the publishing transaction open
    ],
)
def test_a_killed_run_is_finished_by_a_re_run_with_nothing_lost_or_applied_twice(pg, move, online, point):
    if point != "data":  # a live copy made first, whose apply or switch is then killed
        live = run_module(MODULE, {**move, "online": "live"}, pg).result
        assert live.get("failed") is not True, live
    with Writer(pg, move["source_database"]) as writer:
        while writer.committed < 30:
            writer.stop.wait(0.1)
        if online == "live" and point == "data":
            paused = PausedRun(pg, {**move, "online": online}, point)
            paused.wait_paused()
            paused.kill()
    if not (online == "live" and point == "data"):
        paused = PausedRun(pg, {**move, "online": online}, point)
        paused.wait_paused()
        paused.kill()
    if online == "live":
        again = run_module(MODULE, {**move, "online": "live"}, pg).result
        assert again.get("failed") is not True, again
    switch = run_module(MODULE, {**move, "online": "switch"}, pg).result
    assert switch.get("failed") is not True, switch
    assert switch["changed"] is True and switch["online"]["published"] is True
    published_equals_source(pg, move)


def test_check_mode_of_the_switch_lists_freeze_stream_sequences_publish_and_drops_and_changes_nothing(pg, move):
    live = run_module(MODULE, {**move, "online": "live"}, pg).result
    assert live.get("failed") is not True, live
    result = run_module(MODULE, {**move, "online": "switch"}, pg, check=True).result
    assert result.get("failed") is not True, result
    text = "\n".join(result["queries"])
    for statement in ("default_transaction_read_only", "START_REPLICATION", "RENAME TO", "pg_drop_replication_slot"):
        assert statement in text, (statement, text)
    assert "DROP PUBLICATION" in text
    assert len(slots(pg, move["source_database"])) == 2  # the slot and the publication are still there
    assert query(pg, move["target_database"], "SELECT 1 FROM pg_namespace WHERE nspname = 'ca'") == []
    gone = run_module(MODULE, {**move, "state": "absent"}, pg).result
    assert gone.get("failed") is not True, gone


def test_an_offline_copy_over_a_live_one_drops_its_slot_and_publishes(pg, move):
    live = run_module(MODULE, {**move, "online": "live"}, pg).result
    assert live.get("failed") is not True, live
    offline = run_module(MODULE, {**move, "freeze_source": True}, pg).result
    assert offline.get("failed") is not True, offline
    assert slots(pg, move["source_database"]) == []
    published_equals_source(pg, move)


def test_hostile_names_are_applied_as_names(pg, move):
    """A table and columns named with %, quotes and spaces: the apply's values are quoted into templates whose
    names keep their %."""
    source, table = move["source_database"], '"we%ird ""t"""'
    query(pg, source, f'CREATE TABLE {table} ("k%s" text PRIMARY KEY, "v a%" text, n int)')
    query(pg, source, f"INSERT INTO {table} VALUES ('a''1', '%s', 1), ('b', NULL, 2)")
    live = run_module(MODULE, {**move, "online": "live"}, pg).result
    assert live.get("failed") is not True, live
    query(pg, source, f"INSERT INTO {table} VALUES ('c%', 'x''%%', 3)")
    query(pg, source, f"""UPDATE {table} SET "v a%" = '%(n)s', n = n + 1 WHERE "k%s" = 'a''1'""")
    query(pg, source, f"""DELETE FROM {table} WHERE "k%s" = 'b'""")
    switch = run_module(MODULE, {**move, "online": "switch"}, pg).result
    assert switch.get("failed") is not True, switch
    assert switch["online"]["applied"]["changes"] == 3
    published_equals_source(pg, move)
