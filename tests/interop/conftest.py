"""The Go peers of ``peers.toml`` as fixtures, and goose's CLI run against one schema of a throwaway cluster.

A peer that could not be built skips its tests with the failing command and the tail of its output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.gopeers import PeerUnavailable, load_peers, module_dir, peer_binary
from tests.interop.goose_cli import GooseCLI


def _peer_fixture(name: str):
    """A session fixture: the built binary of peer ``name``, or a skip naming the failed build."""

    @pytest.fixture(scope="session")
    def binary() -> Path:
        try:
            return peer_binary(name)
        except PeerUnavailable as unavailable:
            # one line, so that the short summary (-rs) shows the command and the error, not only the first line
            pytest.skip(" | ".join(line.strip() for line in str(unavailable).splitlines() if line.strip()))

    return binary


goose_bin = _peer_fixture("goose")
goose_lamassu_bin = _peer_fixture("goose-lamassu")
goose_lamassu_schema_bin = _peer_fixture("goose-lamassu-schema")
goose_locker_bin = _peer_fixture("goose-locker")
goose_lamassu_fixtures_bin = _peer_fixture("goose-lamassu-fixtures")


@pytest.fixture(scope="session")
def goose_source(goose_bin) -> Path:
    """goose's module source in the Go module cache (read-only), as ``go install`` left it."""
    return module_dir(load_peers()["goose"])


@pytest.fixture
def goose_cli(goose_bin, pg):
    def make(database: str, schema: str, directory: Path, table: str = "goose_db_version") -> GooseCLI:
        return GooseCLI(goose_bin, pg, database, schema, directory, table)

    return make
