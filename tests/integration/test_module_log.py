"""postgres_db_to_schema writes its progress to the managed host's log through Ansible's module log (syslog here)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid

import pytest
from psycopg2 import sql

from tests.harness.ansible import run_module
from tests.harness.fixture import build_legacy

SYSLOG_SOCKET = "/dev/log"
TAG = "ansible-lamassuiot.postgres.postgres_db_to_schema: "


@contextlib.contextmanager
def syslog_listener():
    """A datagram socket at /dev/log standing in for the syslog daemon (this machine has none); yields the
    list of the messages it receives, read as they come (a sender blocks once 10 are unread)."""
    if os.path.exists(SYSLOG_SOCKET) or os.geteuid() != 0:
        pytest.skip("needs root and no syslog daemon listening on /dev/log")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.settimeout(0.1)
    messages: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                messages.append(listener.recv(65536).decode("utf-8", "replace"))

    reader = threading.Thread(target=read, daemon=True)
    try:
        listener.bind(SYSLOG_SOCKET)
        os.chmod(SYSLOG_SOCKET, 0o666)
        reader.start()
        yield messages
    finally:
        done.set()
        if reader.is_alive():
            reader.join()
        listener.close()
        os.unlink(SYSLOG_SOCKET)


def test_each_table_start_and_end_reach_syslog(pg):
    prefix = f"ml_{uuid.uuid4().hex[:8]}_"
    build_legacy(pg, scale=0.001, services=["va"], prefix=prefix)
    target = f"lamassu_{uuid.uuid4().hex[:8]}"
    with contextlib.closing(pg.connect("postgres")) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
    args = {"source_database": prefix + "va", "target_database": target, "target_schema": "va"}
    with syslog_listener() as messages:
        result = run_module("postgres_db_to_schema", args, pg).result
    assert result["changed"] is True, result.get("msg")
    lines = [m.split(TAG, 1)[1] for m in messages if TAG in m and f"-> {target}.va: " in m]
    assert lines, messages
    for table in result["tables"]:
        assert any(f"table {table['name']}: started" in line for line in lines), (table, lines)
        assert any(f"table {table['name']}: {table['rows']} rows in " in line for line in lines), (table, lines)
    assert "published in" in lines[-1], lines
