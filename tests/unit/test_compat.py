"""The stand-ins of ``module_utils._compat`` for what Python 3.8 and psycopg2 2.8 lack."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils._compat import transaction, zip_strict


def test_zip_strict_pairs_equal_lengths_like_zip():
    assert list(zip_strict("ab", [1, 2], iter((None, True)))) == [("a", 1, None), ("b", 2, True)]
    assert list(zip_strict()) == [] and list(zip_strict([], ())) == []


@pytest.mark.parametrize(
    ("iterables", "message"),
    [
        (([1, 2], [1]), "argument 2 is shorter than argument 1"),
        (([1], [1, 2]), "argument 1 is shorter than argument 2"),
        (([1, 2], [1, 2], iter([1])), "argument 3 is shorter than argument 1"),
    ],
)
def test_zip_strict_refuses_unequal_lengths(iterables, message):
    with pytest.raises(ValueError, match=message):
        list(zip_strict(*iterables))


def test_zip_strict_is_lazy_and_keeps_none_values():
    pairs = zip_strict([None, 1], [2, None])
    assert next(pairs) == (None, 2)
    assert next(pairs) == (1, None)


class FakeConnection:
    """What ``transaction`` uses of a psycopg2 connection: autocommit, closed and ``with conn``."""

    def __init__(self, autocommit: bool):
        self.autocommit = autocommit
        self.closed = 0
        self.events: list[str] = []

    def __enter__(self):
        self.events.append(f"begin autocommit={self.autocommit}")
        return self

    def __exit__(self, kind, value, traceback):
        self.events.append("rollback" if kind else "commit")
        return False


@pytest.mark.parametrize("autocommit", [True, False])
def test_transaction_runs_the_block_in_one_transaction_and_restores_autocommit(autocommit):
    conn = FakeConnection(autocommit)
    with transaction(conn) as inside:
        assert inside is conn and conn.autocommit is False
    assert conn.events == ["begin autocommit=False", "commit"]
    assert conn.autocommit is autocommit


def test_transaction_rolls_back_on_an_exception_and_restores_autocommit():
    conn = FakeConnection(True)
    with pytest.raises(RuntimeError), transaction(conn):
        raise RuntimeError("boom")
    assert conn.events == ["begin autocommit=False", "rollback"] and conn.autocommit is True


def test_transaction_leaves_a_closed_connection_alone():
    conn = FakeConnection(True)
    with pytest.raises(RuntimeError), transaction(conn):
        conn.closed = 2
        raise RuntimeError("connection lost")
    assert conn.autocommit is False
