"""The advisory-lock loop: which key goes to PostgreSQL, when it waits, and what it says when the lock stays held."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import OperationFailed
from ansible_collections.lamassuiot.postgres.plugins.module_utils.locks import Holder, LockKey, take


class FakeSession:
    """Answers ``pg_try_advisory_lock`` from a list of outcomes, and the holders query with ``holders``."""

    def __init__(self, outcomes: list[bool], holders: list[tuple] = ()):
        self.outcomes = list(outcomes)
        self.holders = list(holders)
        self.queries: list[tuple] = []

    def fetch_value(self, query, params=None):
        self.queries.append((query, params))
        return self.outcomes.pop(0)

    def fetch_all(self, query, params=None):
        self.queries.append((query, params))
        return self.holders


def refuse(holders: list[Holder]) -> OperationFailed:
    return OperationFailed("held by " + ", ".join(str(h.pid) for h in holders))


@pytest.mark.parametrize(
    ("key", "call", "params"),
    [
        (LockKey.number(4097083626), "SELECT pg_try_advisory_lock(%s)", (4097083626,)),
        (
            LockKey.names("lamassuiot.postgres schema", "lamassu"),
            "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))",
            ("lamassuiot.postgres schema", "lamassu"),
        ),
    ],
)
def test_the_key_is_sent_as_before(key, call, params):
    session = FakeSession([True])
    take(session, key, refuse, timeout=1, interval=0)
    assert session.queries == [(call, params)]


def test_waits_until_the_lock_is_free():
    session = FakeSession([False, False, True])
    take(session, LockKey.number(1), refuse, timeout=5, interval=0)
    assert len(session.queries) == 3


@pytest.mark.parametrize(
    ("wait_while_held", "holders", "message"),
    [
        (True, [(42, "goose", "local", None)], "held by 42"),
        (False, [(7, "", "local", None), (8, "", "local", None)], "held by 7, 8"),
    ],
)
def test_a_held_lock_is_refused_with_its_holders(wait_while_held, holders, message):
    session = FakeSession([False] * 100, holders)
    with pytest.raises(OperationFailed, match=message):
        take(session, LockKey.number(1), refuse, timeout=0, interval=0, wait_while_held=wait_while_held)


def test_a_holder_no_longer_listed_is_waited_for():
    session = FakeSession([False, True], holders=[])
    take(session, LockKey.number(1), refuse, timeout=5, interval=0, wait_while_held=False)
