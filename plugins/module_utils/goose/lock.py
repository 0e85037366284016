# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""goose's Postgres session locker: ``pg_try_advisory_lock`` retried until a bounded wait runs out."""

from __future__ import annotations

import time

from .._pg import extensions
from ..errors import OperationFailed
from ..locks import MIGRATION_LOCK_IDS, Holder, LockKey, take, unlock

# goose waits 60 x 5 s; we poll more often within the same bound.
DEFAULT_LOCK_TIMEOUT = 300.0
DEFAULT_LOCK_INTERVAL = 0.5


class MigrationLock:
    """Session-level advisory locks on one connection; ``with`` takes them, leaving the block frees them."""

    def __init__(
        self,
        session,
        database: str,
        ids: tuple[int, ...] = MIGRATION_LOCK_IDS,
        timeout: float = DEFAULT_LOCK_TIMEOUT,
        interval: float = DEFAULT_LOCK_INTERVAL,
    ):
        self.session = session
        self.database = database
        self.ids = ids
        self.timeout = timeout
        self.interval = interval
        self.held: list[int] = []

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        for lock_id in self.ids:
            try:
                take(
                    self.session, LockKey.number(lock_id), self._refusal(lock_id), self.timeout, self.interval, deadline
                )
            except OperationFailed:
                self.release()
                raise
            self.held.append(lock_id)

    def release(self) -> None:
        while self.held:
            unlock(self.session, LockKey.number(self.held.pop()))

    def _refusal(self, lock_id: int):
        def refuse(holders: list[Holder]) -> OperationFailed:
            return OperationFailed(
                f"Another migration is in progress on database {self.database!r}: the goose advisory lock "
                f"{lock_id} is held{_described(holders)}; gave up after {self.timeout:g} s. Nothing was changed; "
                "run again when it has finished."
            )

        return refuse

    def __enter__(self) -> MigrationLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.session.conn.closed:
            return
        if self.session.conn.get_transaction_status() != extensions.TRANSACTION_STATUS_IDLE:
            self.session.conn.rollback()
        self.release()


def _described(holders: list[Holder]) -> str:
    if not holders:
        return ""
    first = holders[0]
    return (
        f" by backend pid {first.pid} (application {first.application or 'unknown'!r}, client {first.client}, "
        f"since {first.since})"
    )
