"""Proof that nothing changed: the catalog and data of some databases plus the cluster's databases and roles.

Built on ``catalog_snapshot`` of ``tests/harness/catalog.py``::

    before = server_state(pg, ["lamassu", "ca"])
    ...  # a run that must be refused
    assert state_differences(before, server_state(pg, ["lamassu", "ca"])) == []

A database that does not exist is recorded as ``None``, so a run that creates it shows up. On a server shared
with other test processes (``LAMASSU_TEST_DSN``), ``watched`` limits the cluster-wide part (databases and roles)
to the names a test cares about, since other tests create and drop databases at the same time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from .catalog import catalog_snapshot, diff_descriptions
from .pgcluster import Cluster

MAINTENANCE_DATABASE = "postgres"


def database_exists(cluster: Cluster, database: str) -> bool:
    return bool(cluster.query(MAINTENANCE_DATABASE, "SELECT 1 FROM pg_database WHERE datname = %s", (database,)))


def database_state(cluster: Cluster, database: str) -> dict | None:
    """Catalog and data checksums of ``database`` (without the cluster-wide part), or None when it is absent."""
    if not database_exists(cluster, database):
        return None
    with contextlib.closing(cluster.connect(database)) as conn:
        snapshot = catalog_snapshot(conn, data=True)
    snapshot.pop("databases")
    snapshot.pop("roles")
    return snapshot


def cluster_state(cluster: Cluster, watched: Iterable[str] | None = None) -> dict:
    """The cluster's databases and roles; only the ``watched`` names when given (or on an external server)."""
    with contextlib.closing(cluster.connect(MAINTENANCE_DATABASE)) as conn:
        snapshot = catalog_snapshot(conn, data=False)
    state = {"databases": snapshot["databases"], "roles": snapshot["roles"]}
    if watched is not None or cluster.external:
        names = set(watched or ())
        state = {kind: {k: v for k, v in rows.items() if k in names} for kind, rows in state.items()}
    return state


def server_state(cluster: Cluster, databases: Iterable[str], watched: Iterable[str] | None = None) -> dict:
    """Per database its state (None when absent), and the cluster-wide databases and roles."""
    databases = list(dict.fromkeys(databases))
    if watched is None and cluster.external:
        watched = databases
    return {
        "cluster": cluster_state(cluster, watched),
        "databases": {name: database_state(cluster, name) for name in databases},
    }


def state_differences(before: dict, after: dict) -> list[str]:
    """Readable differences between two states; empty when nothing changed."""
    return diff_descriptions(before, after, names=("before", "after"))
