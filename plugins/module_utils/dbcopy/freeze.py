# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Freeze a source database: other sessions' writes fail from before the copy on.

How: ``ALTER DATABASE src SET default_transaction_read_only = on`` (every new
session starts read-only, so an application's INSERT fails with "cannot
execute INSERT in a read-only transaction"), then every other session of the
database is terminated (so no session opened before keeps writing), after
refusing to freeze while prepared transactions of the database exist (they
could still commit writes). The value the database had before is kept in the
journal and restored exactly by ``thaw``.

Limits, documented for operators: the setting is a default, not a
permission. A session that runs ``SET default_transaction_read_only = off``,
``SET transaction_read_only = off`` or ``BEGIN READ WRITE`` can still write,
and so can a superuser. Applications such as Lamassu's services (pgx/gorm)
never do that, so their writes fail loudly, which is the purpose: stale
writers must not write to the old place unnoticed.
"""

from __future__ import annotations

import time

from .._compat import transaction
from .._pg import sql
from ..errors import OperationFailed
from .journal import Journal

SETTING = "default_transaction_read_only"
TERMINATE_ROUNDS = 50


def current_setting(session, database: str) -> str | None:
    """The database-level value of ``default_transaction_read_only`` (``None`` when not set)."""
    return session.fetch_value(
        """
        SELECT split_part(cfg, '=', 2) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase,
               unnest(s.setconfig) AS cfg
        WHERE d.datname = %s AND s.setrole = 0 AND split_part(cfg, '=', 1) = %s
        """,
        (database, SETTING),
    )


def is_frozen(session, database: str) -> bool:
    return (current_setting(session, database) or "").lower() in ("on", "true", "1", "yes")


def other_sessions(session, database: str) -> list[str]:
    """Human-readable descriptions of the sessions connected to ``database`` other than this one."""
    rows = session.fetch_all(
        """
        SELECT pid, usename, application_name, coalesce(host(client_addr), 'local'), state
        FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()
        ORDER BY pid
        """,
        (database,),
    )
    return [f"pid {pid} user {user} application {app!r} from {addr} ({state})" for pid, user, app, addr, state in rows]


def freeze(session, journal: Journal, database: str) -> bool:
    """Freeze ``database``; return whether anything changed. The caller's connection is in another database."""
    recorded, _previous = journal.freeze_record(database)
    if recorded and is_frozen(session, database):
        return False
    prepared = [
        gid
        for (gid,) in session.fetch_all(
            "SELECT gid FROM pg_prepared_xacts WHERE database = %s ORDER BY gid", (database,)
        )
    ]
    if prepared:
        raise OperationFailed(
            f"Cannot freeze database {database!r}: prepared transactions could still write to it: {', '.join(prepared)}"
        )
    with transaction(session.conn):
        if not recorded:
            journal.record_freeze(database, current_setting(session, database))
        session.execute(
            sql.SQL("ALTER DATABASE {} SET {} = on").format(sql.Identifier(database), sql.Identifier(SETTING)),
            what=f"freeze of database {database}",
        )
    terminate_older_sessions(session, database, session.fetch_value("SELECT clock_timestamp()"))
    return True


def terminate_older_sessions(session, database: str, since) -> None:
    """Terminate the sessions of ``database`` that started before ``since`` and wait until they are gone.

    Sessions started later read the database settings after the freeze committed: they are read-only already
    and may stay (the copy's own sessions are among them).
    """
    query = """
        SELECT pid FROM pg_stat_activity
        WHERE datname = %s AND pid <> pg_backend_pid() AND backend_start <= %s
    """
    for _round in range(TERMINATE_ROUNDS):
        pids = [pid for (pid,) in session.fetch_all(query, (database, since))]
        if not pids:
            return
        session.execute(
            "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,), what=f"freeze of {database}"
        )
        if session.dry_run:
            return
        time.sleep(0.1)
    pids = [pid for (pid,) in session.fetch_all(query, (database, since))]
    raise OperationFailed(f"Database {database!r} is frozen but sessions {pids} did not end after being terminated")


def thaw(session, journal: Journal, database: str) -> bool:
    """Restore the setting recorded before the freeze; return whether anything changed."""
    recorded, previous = journal.freeze_record(database)
    if not recorded:
        return False
    exists = session.fetch_value("SELECT count(*) FROM pg_database WHERE datname = %s", (database,))
    with transaction(session.conn):
        if exists:
            target = sql.SQL("ALTER DATABASE {} ").format(sql.Identifier(database))
            if previous is None:
                statement = sql.SQL("{}RESET {}").format(target, sql.Identifier(SETTING))
            else:
                statement = sql.SQL("{}SET {} = {}").format(target, sql.Identifier(SETTING), sql.Literal(previous))
            session.execute(statement, what=f"lifting the freeze of database {database}")
        journal.forget_freeze(database)
    return True
