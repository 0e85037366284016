"""pytest wiring: the collection on the import path and a real PostgreSQL per test session (per xdist worker)."""

from __future__ import annotations

import uuid

import pytest

from tests.harness.collection import ensure_collection_path

ensure_collection_path()

from tests.harness.pgcluster import Cluster, throwaway_cluster  # noqa: E402


@pytest.fixture(scope="session")
def pg() -> Cluster:
    """A throwaway cluster (or the server of ``LAMASSU_TEST_DSN``), removed at the end even after failures."""
    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture
def db(pg) -> str:
    """An empty database of its own for one test, dropped afterwards."""
    name = f"db_{uuid.uuid4().hex[:10]}"
    pg.execute("postgres", f'CREATE DATABASE "{name}"')
    yield name
    pg.execute("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def unique_name(request) -> str:
    """A short name unique to this test, usable as a database or schema name."""
    import hashlib

    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]
    return f"t_{digest}"
