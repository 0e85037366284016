"""goose's CLI and the DSN the Go peers take, against one schema of a cluster (through ``search_path``)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness.pgcluster import Cluster


def dsn(cluster: Cluster, database: str, schema: str | None = None, application_name: str = "") -> str:
    """A libpq keyword DSN; ``search_path=`` is a run-time parameter for pgx (goose's driver)."""
    parts = [f"host={cluster.host}", f"port={cluster.port}", f"user={cluster.user}", f"dbname={database}"]
    if cluster.password:
        parts.append(f"password={cluster.password}")
    parts.append("sslmode=disable")
    if schema:
        parts.append(f"search_path={schema}")
    if application_name:
        parts.append(f"application_name={application_name}")
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
