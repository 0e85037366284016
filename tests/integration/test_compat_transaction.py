"""``_compat.transaction`` on a real autocommit connection: one transaction, whatever psycopg2's ``with conn``
does there (2.8: nothing; 2.9: a transaction)."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils._compat import transaction


def test_a_block_on_an_autocommit_connection_is_one_transaction(pg, db):
    pg.execute(db, "CREATE TABLE t (n int)")
    conn = pg.connect(db)
    try:
        assert conn.autocommit
        with pytest.raises(RuntimeError), transaction(conn), conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
            cur.execute("SELECT pg_advisory_xact_lock(4242)")
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
            assert cur.fetchone() == (1,)  # held until the transaction ends, not released after its statement
            raise RuntimeError("rolled back")
        assert conn.autocommit and pg.query(db, "SELECT count(*) FROM t") == [(0,)]
        with transaction(conn), conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (2)")
        assert conn.autocommit and pg.query(db, "SELECT n FROM t") == [(2,)]
    finally:
        conn.close()
