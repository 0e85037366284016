# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-ins for what the managed host's Python (3.8 or newer) may not have.

``zip(..., strict=True)`` is Python 3.10; ``zip_strict`` keeps its intent (equal lengths, else ValueError)
on every Python the modules support. ``transaction`` is ``with conn:`` as psycopg2 2.9 runs it, on 2.8 too.
"""

from __future__ import annotations

import contextlib
import itertools

_MISSING = object()


def zip_strict(*iterables):
    """``zip(*iterables, strict=True)``: the same tuples, lazily; ValueError once an iterable runs out early."""
    for items in itertools.zip_longest(*iterables, fillvalue=_MISSING):
        short = [position for position, item in enumerate(items, 1) if item is _MISSING]
        if short:
            longer = next((position for position, item in enumerate(items, 1) if item is not _MISSING), None)
            raise ValueError(f"zip_strict() argument {short[0]} is shorter than argument {longer}")
        yield items


@contextlib.contextmanager
def transaction(conn):
    """``with conn:`` as psycopg2 2.9 does it, on psycopg2 2.8 too: one transaction, committed at the end or
    rolled back on an exception, also on an autocommit connection (2.8 starts none there, so each statement
    would commit on its own and a transaction-level advisory lock would be let go at once). The connection is
    autocommit again afterwards when it was before."""
    if not conn.autocommit:
        with conn:
            yield conn
        return
    conn.autocommit = False
    try:
        with conn:
            yield conn
    finally:
        if not conn.closed:
            conn.autocommit = True
