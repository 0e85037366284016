"""The Go peers of ``peers.toml`` as fixtures, and goose's CLI run against one schema of a throwaway cluster.

A peer that could not be built skips its tests with the failing command and the tail of its output.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.gopeers import PeerUnavailable, load_peers, module_dir, peer_binary
from tests.harness.pgcluster import Cluster


def _peer_fixture(name: str):
    """A session fixture: the built binary of peer ``name``, or a skip naming the failed build."""

    @pytest.fixture(scope="session")
    def binary() -> Path:
        try:
            return peer_binary(name)
        except PeerUnavailable as unavailable:
            pytest.skip(str(unavailable))

    return binary


goose_bin = _peer_fixture("goose")
goose_lamassu_bin = _peer_fixture("goose-lamassu")
goose_lamassu_schema_bin = _peer_fixture("goose-lamassu-schema")
goose_locker_bin = _peer_fixture("goose-locker")


@pytest.fixture(scope="session")
def goose_source(goose_bin) -> Path:
    """goose's module source in the Go module cache (read-only), as ``go install`` left it."""
    return module_dir(load_peers()["goose"])


def dsn(cluster: Cluster, database: str, schema: str | None = None) -> str:
    """A libpq keyword DSN; ``search_path=`` is a run-time parameter for pgx (goose's driver)."""
    parts = [f"host={cluster.host}", f"port={cluster.port}", f"user={cluster.user}", f"dbname={database}"]
    if cluster.password:
        parts.append(f"password={cluster.password}")
    parts.append("sslmode=disable")
    if schema:
        parts.append(f"search_path={schema}")
    return " ".join(parts)


@dataclass
class GooseStatus:
    applied: list[str]  # file names, in goose's order
    pending: list[str]


# goose logs through the standard logger: "2026/01/02 15:04:05     <applied at or Pending>  -- <file>"
_STATUS_LINE = re.compile(r"^(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?    (?P<when>\S.*?)\s+--\s+(?P<file>\S+)\s*$")


class GooseCLI:
    """``goose -dir D -table T postgres DSN <command>`` on one schema (through ``search_path``)."""

    def __init__(self, binary: Path, cluster: Cluster, database: str, schema: str, directory: Path, table: str):
        self.binary, self.cluster, self.database = binary, cluster, database
        self.schema, self.directory, self.table = schema, directory, table

    def run(
        self, *args: str, flags: tuple[str, ...] = (), check: bool = True, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        """``args``: the command and its arguments (``up-to 20``); ``flags`` go before the driver."""
        command = [str(self.binary), "-dir", str(self.directory), "-table", self.table, "-no-color", *flags]
        command += ["postgres", dsn(self.cluster, self.database, self.schema), *args]
        env = {**os.environ, **(env or {})}
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"goose {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc

    def status(self) -> GooseStatus:
        proc = self.run("status")
        applied, pending = [], []
        for line in (proc.stdout + proc.stderr).splitlines():
            match = _STATUS_LINE.match(line)
            if match and match["file"] != "Migration":
                (pending if match["when"] == "Pending" else applied).append(match["file"])
        return GooseStatus(applied, pending)

    def version(self) -> int:
        proc = self.run("version")
        match = re.search(r"goose: version (\d+)", proc.stdout + proc.stderr)
        assert match, proc.stdout + proc.stderr
        return int(match.group(1))


@pytest.fixture
def goose_cli(goose_bin, pg):
    def make(database: str, schema: str, directory: Path, table: str = "goose_db_version") -> GooseCLI:
        return GooseCLI(goose_bin, pg, database, schema, directory, table)

    return make
