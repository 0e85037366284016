# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Session advisory locks taken with ``pg_try_advisory_lock`` and retried for a bounded time.

Every run that must wait its turn goes through ``take``: the copy (its target schema), the schema module (its
database) and goose (its migration lock). Each caller names its key and says what to report when the lock stays
held; ``holders`` lists the server processes that hold a key, for that message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import LamassuError

# The key of every advisory lock the collection takes, in one place (two runs that must not overlap meet on one key).
# Session locks (pg_try_advisory_lock, retried through ``take``), keyed by a namespace and a name:
SCHEMA_LOCK_NAMESPACE = "lamassuiot.postgres schema"  # the schema module, per database
COPY_LOCK_NAMESPACE = "lamassuiot.postgres db_to_schema"  # a copy, per target schema
# The server-wide lock of a run that changes the layout (upgrade, rollback, cleanup), in database postgres: the
# CRC-32 of "lamassuiot.postgres upgrade", a one-key lock apart from goose's ids (the namespaced locks above are
# two-key hashtext locks, another key space).
UPGRADE_LOCK_ID = 2359239940
# goose's Postgres session locker id (lock.DefaultLockID): 4097083626, the CRC-32 of "goose", as the
# design contract fixes it. Some goose v3 releases define it as the CRC-64/ECMA of "goose" instead;
# both are taken (always in this order, so two runs of ours cannot deadlock), which keeps any goose
# binary run with a session locker and this module from migrating one database at the same time.
GOOSE_LOCK_ID = 4097083626
CRC64_GOOSE_LOCK_ID = 5887940537704921958
MIGRATION_LOCK_IDS = (GOOSE_LOCK_ID, CRC64_GOOSE_LOCK_ID)
# Transaction locks (pg_advisory_xact_lock(hashtext(name))), held while one statement group runs:
# - the creation of the migrate module's checks table by concurrent runs (check mode reads only and takes none);
CHECKS_LOCK = "lamassuiot.postgres migration checks"
# - the grants to the services' role: copies into one database may grant on it at once, and two GRANTs collide;
ACCESS_LOCK = "lamassuiot.postgres db_to_schema access"
# - CREATE EXTENSION in the unified database;
EXTENSIONS_LOCK = "lamassuiot.postgres db_to_schema extensions"
# - the creation of the journal tables by concurrent runs on other targets.
JOURNAL_LOCK = "lamassuiot.postgres journal"

# pg_locks keeps a bigint key in two 32-bit halves (objsubid 1), a pair of int4 keys as they are (objsubid 2).
_BIGINT_KEY = "l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = %s"
_PAIR_KEY = (
    "l.objsubid = 2 AND l.classid = (hashtext(%s)::bigint & 4294967295)::text::oid "
    "AND l.objid = (hashtext(%s)::bigint & 4294967295)::text::oid"
)
_HOLDERS = """
SELECT l.pid, coalesce(a.application_name, ''), coalesce(a.client_addr::text, 'local'), a.backend_start
FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND {key}
ORDER BY l.pid
"""


@dataclass(frozen=True)
class LockKey:
    """One advisory lock key: a bigint (``LockKey.number``) or two names hashed with ``hashtext`` (``LockKey.names``)."""

    params: tuple
    arguments: str  # the key as the arguments of pg_try_advisory_lock / pg_advisory_unlock
    match: str  # the key as a condition on pg_locks l

    @classmethod
    def number(cls, key: int) -> LockKey:
        return cls((key,), "%s", _BIGINT_KEY)

    @classmethod
    def names(cls, namespace: str, name: str) -> LockKey:
        return cls((namespace, name), "hashtext(%s), hashtext(%s)", _PAIR_KEY)


@dataclass(frozen=True)
class Holder:
    """A server process that holds a lock, as pg_stat_activity shows it."""

    pid: int
    application: str
    client: str
    since: object


def xact_lock(session, name: str) -> None:
    """Wait for the transaction lock ``name`` (one of the ``*_LOCK`` names above); it ends with the transaction."""
    session.fetch_all("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))


def try_lock(session, key: LockKey) -> bool:
    """One attempt; true when this session holds the lock now."""
    return bool(session.fetch_value(f"SELECT pg_try_advisory_lock({key.arguments})", key.params))


def unlock(session, key: LockKey) -> None:
    session.fetch_value(f"SELECT pg_advisory_unlock({key.arguments})", key.params)


def holders(session, key: LockKey) -> list[Holder]:
    return [Holder(*row) for row in session.fetch_all(_HOLDERS.format(key=key.match), key.params)]


def take(
    session,
    key: LockKey,
    refusal: Callable[[list[Holder]], LamassuError],
    timeout: float,
    interval: float,
    deadline: float | None = None,
    wait_while_held: bool = True,
) -> None:
    """Take ``key``, trying every ``interval`` s until ``timeout`` s (or the given ``deadline``) have passed.

    When the lock stays held, raise what ``refusal`` makes of the list of its holders. With
    ``wait_while_held=False`` a lock held by a listed server process fails at once; only a holder that is no
    longer listed (its connection has just closed, its process ends a moment later) is waited for.
    """
    deadline = time.monotonic() + timeout if deadline is None else deadline
    while not try_lock(session, key):
        if not wait_while_held:
            found = holders(session, key)
            if found or time.monotonic() > deadline:
                raise refusal(found)
        elif time.monotonic() >= deadline:
            raise refusal(holders(session, key))
        time.sleep(interval)
