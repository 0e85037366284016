# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The server-wide lock of the runs that change the Lamassu layout (upgrade, rollback, cleanup).

One session advisory lock in the maintenance database (the unified database may not exist yet). Module
processes end with their task, so the lock is held by a detached holder process: ``take`` starts it and
returns once it holds the lock (or fails naming the run that holds it); the holder keeps its session open
until ``release`` ends that session, its time limit runs out, the controller process it watches ends, or the
server goes away. Whatever ends it, the server frees the lock with the session: a run that is gone never
keeps the lock (that is how a later run takes over).

The holder's ``application_name`` names its run (``lamassu-lock <run id> <controller pid>@<controller host>``),
which is how a refused run names the holder and how ``release`` finds its own holder and no other.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._pg import psycopg2
from .connection import ConnectionParams, connect
from .errors import InvalidInput, LamassuError, OperationFailed
from .session import Session

LOCK_DATABASE = "postgres"
# CRC-32 of "lamassuiot.postgres upgrade": a one-key lock, apart from goose's ids (4097083626 and its CRC-64);
# the schema and copy runs take two-key (hashtext) locks, another key space.
UPGRADE_LOCK_ID = 2359239940
HOLDER_PREFIX = "lamassu-lock"
DEFAULT_HOLD_TIMEOUT = 43200
# A lock whose holder is no longer listed belongs to a run whose session is ending: tried again this long.
TAKEOVER_SECONDS = 5.0
RELEASE_WAIT_SECONDS = 10.0
POLL_SECONDS = 0.2
HOLDER_CHECK_SECONDS = 1.0
APPLICATION_NAME_BYTES = 63  # NAMEDATALEN - 1: the server cuts longer names

TRY_LOCK = "SELECT pg_try_advisory_lock(%s)"
TERMINATE = "SELECT pg_terminate_backend(%s)"
_HOLDERS = """
SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),
       to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
-- pg_locks splits a bigint key in two 32-bit halves
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND ((l.classid::bigint << 32) | l.objid::bigint) = %s
ORDER BY a.backend_start
"""
_SESSIONS_LEFT = "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE pid = ANY(%s)"
_OWNER_PATTERN = re.compile(rf"^{HOLDER_PREFIX} (\S+) (\d+)@(\S*)$")


class LockHeld(LamassuError):
    """Another run holds the lock; nothing was changed."""


@dataclass(frozen=True)
class Owner:
    """The run a holder belongs to: its id (its start time) and the controller process that runs it."""

    run_id: str
    controller_host: str
    controller_pid: int

    def validate(self) -> None:
        for name, value in (("run_id", self.run_id), ("controller_host", self.controller_host)):
            if not value or re.search(r"\s", value):
                raise InvalidInput(f"The lock owner's {name} {value!r} must be a non-empty word without spaces")
        if self.controller_pid <= 0:
            raise InvalidInput(f"The lock owner's controller_pid {self.controller_pid} must be a process id")

    @property
    def application_name(self) -> str:
        name = f"{HOLDER_PREFIX} {self.run_id} {self.controller_pid}@{self.controller_host}"
        return name.encode()[:APPLICATION_NAME_BYTES].decode(errors="ignore")

    @classmethod
    def parse(cls, application_name: str) -> Owner | None:
        match = _OWNER_PATTERN.match(application_name)
        return cls(match[1], match[3], int(match[2])) if match else None


@dataclass(frozen=True)
class Holder:
    """A server session that holds the lock, as pg_locks and pg_stat_activity show it."""

    backend_pid: int
    application_name: str
    client: str
    since: str

    @property
    def owner(self) -> Owner | None:
        return Owner.parse(self.application_name)

    def describe(self) -> str:
        owner = self.owner
        if not self.backend_pid:
            return "a session that is ending (its server process is no longer listed)"
        session = f"server process {self.backend_pid}, client {self.client}, holding it since {self.since}"
        if owner is None:
            return f"a session that is not a Lamassu run ({session}, application {self.application_name!r})"
        return (
            f"run {owner.run_id} (started {run_started(owner.run_id)}) of controller {owner.controller_host}, "
            f"process {owner.controller_pid} ({session})"
        )

    def as_dict(self) -> dict:
        owner = self.owner
        return {
            "backend_pid": self.backend_pid,
            "application_name": self.application_name,
            "client": self.client,
            "since": self.since,
            "run_id": owner.run_id if owner else None,
            "controller_host": owner.controller_host if owner else None,
            "controller_pid": owner.controller_pid if owner else None,
        }


def run_started(run_id: str) -> str:
    """The start time a run id (``%Y%m%dT%H%M%SZ``, as the playbooks name runs) stands for; else the id."""
    match = re.fullmatch(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z", run_id)
    return "{}-{}-{} {}:{}:{} UTC".format(*match.groups()) if match else run_id


def refusal(holder: Holder, location: str) -> str:
    return (
        f"The upgrade lock of the server {location} is held by {holder.describe()}. Only one upgrade, rollback "
        "or cleanup runs on a server at a time; nothing was changed. Run again when that run has finished; if "
        f"that run is gone, end its session (SELECT pg_terminate_backend({holder.backend_pid})) and run again."
    )


def read_holders(session: Session) -> list[Holder]:
    return [Holder(*row) for row in session.fetch_all(_HOLDERS, (UPGRADE_LOCK_ID,))]


def try_take(session: Session) -> Holder | None:
    """Take the lock on ``session``: None when taken, else the holder (a holder just gone is waited for)."""
    deadline = time.monotonic() + TAKEOVER_SECONDS
    while not session.fetch_value(TRY_LOCK, (UPGRADE_LOCK_ID,)):
        holders = read_holders(session)
        if holders:
            return holders[0]
        if time.monotonic() >= deadline:
            return Holder(0, "", "unknown", "unknown")
        time.sleep(POLL_SECONDS)
    return None


def lock_info(params: ConnectionParams) -> dict:
    return {"database": LOCK_DATABASE, "key": UPGRADE_LOCK_ID, "server": f"{params.location}:{params.port}"}


def take(params: ConnectionParams, owner: Owner, timeout: int, watch_pid: int | None, check_mode: bool) -> dict:
    """Have a detached holder take the lock for ``owner``, or raise LockHeld naming the run that holds it."""
    owner.validate()
    if timeout <= 0:
        raise InvalidInput(f"The lock timeout must be a positive number of seconds, not {timeout}")
    if watch_pid and not ProcessWatch(watch_pid).alive():
        # a holder watching a process it cannot see would free the lock as soon as it took it
        raise InvalidInput(
            f"The controller process {watch_pid} is not running where the module runs: watch_controller needs "
            "the module to run on the controller (ansible_connection=local)"
        )
    queries: list[str] = []
    session = Session(connect(params, LOCK_DATABASE), queries)
    try:
        planned = session.render(TRY_LOCK, (UPGRADE_LOCK_ID,))
        holders = read_holders(session)
    finally:
        session.close()  # before the fork: the holder must not share this connection
    result = {"changed": False, "lock": lock_info(params), "queries": queries}
    ours = [h for h in holders if h.application_name == owner.application_name]
    if ours:
        return {**result, "holder": ours[0].as_dict()}
    if holders and check_mode:
        raise LockHeld(refusal(holders[0], result["lock"]["server"]), {**result, "holder": holders[0].as_dict()})
    if check_mode:
        return {**result, "changed": True, "holder": None, "queries": [planned]}
    answer = detach(lambda report: hold(params, owner, timeout, watch_pid, report), params.connect_timeout + 30)
    if "error" in answer:
        raise OperationFailed(f"The upgrade lock holder could not start: {answer['error']}", result)
    holder = Holder(**answer["holder"])
    if not answer["held"]:
        raise LockHeld(refusal(holder, result["lock"]["server"]), {**result, "holder": holder.as_dict()})
    return {**result, "changed": True, "holder": holder.as_dict(), "queries": [planned]}


def release(params: ConnectionParams, owner: Owner | None, check_mode: bool) -> dict:
    """End the holder session of ``owner`` (of anyone when None); the server frees the lock with it."""
    if owner is not None:
        owner.validate()
    queries: list[str] = []
    session = Session(connect(params, LOCK_DATABASE), queries)
    try:
        holders = [h for h in read_holders(session) if owner is None or h.application_name == owner.application_name]
        for holder in holders:
            if check_mode:
                queries.append(session.render(TERMINATE, (holder.backend_pid,)))
            else:
                session.execute(TERMINATE, (holder.backend_pid,), what="end the upgrade lock holder")
        pids = [h.backend_pid for h in holders]
        deadline = time.monotonic() + RELEASE_WAIT_SECONDS
        while pids and not check_mode and session.fetch_value(_SESSIONS_LEFT, (pids,)):
            if time.monotonic() >= deadline:
                raise OperationFailed(f"The upgrade lock holder sessions {pids} did not end within the wait")
            time.sleep(POLL_SECONDS)
    finally:
        session.close()
    return {
        "changed": bool(holders),
        "lock": lock_info(params),
        "released": [h.as_dict() for h in holders],
        "queries": queries,
    }


def hold(
    params: ConnectionParams, owner: Owner, timeout: int, watch_pid: int | None, report: Callable[[dict], None]
) -> None:
    """The holder's life: take the lock, report, then keep the session until something ends it."""
    named = dataclasses.replace(params, extra={**params.extra, "application_name": owner.application_name})
    conn = connect(named, LOCK_DATABASE)
    try:
        session = Session(conn, [])
        other = try_take(session)
        if other is not None:
            report({"held": False, "holder": dataclasses.asdict(other)})
            return
        ours = [h for h in read_holders(session) if h.application_name == owner.application_name]
        report({"held": True, "holder": dataclasses.asdict(ours[0])})
        _keep(session, timeout, ProcessWatch(watch_pid) if watch_pid else None)
    finally:
        conn.close()


def _keep(session: Session, timeout: int, watched: ProcessWatch | None) -> None:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and (watched is None or watched.alive()):
            if select.select([session.conn.fileno()], [], [], HOLDER_CHECK_SECONDS)[0]:
                # Something came from the server on an idle session: the termination notice or the end of it.
                session.fetch_value("SELECT 1")
    except psycopg2.Error:
        pass  # the session was ended (release, server shutdown): so is the lock


class ProcessWatch:
    """A process that must stay alive, told apart from a later process that reuses its id by its start time."""

    def __init__(self, pid: int):
        self.pid = pid
        self.started = self._start_time()

    def _stat(self) -> list[str] | None:
        try:
            with open(f"/proc/{self.pid}/stat", encoding="utf-8") as stat:
                return stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None

    def _start_time(self) -> str | None:
        fields = self._stat()
        return fields[19] if fields and len(fields) > 19 else None

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        fields = self._stat()
        if fields is None:  # no /proc: the signal answer is all there is
            return True
        # a zombie has ended (its parent has not collected it yet); a new start time is another process
        return fields[0] not in ("Z", "X") and (self.started is None or fields[19] == self.started)


def detach(body: Callable[[Callable[[dict], None]], None], answer_timeout: float) -> dict:
    """Run ``body`` in a daemon process (its own session, no inherited descriptors, so neither Ansible nor
    an SSH channel waits for it) and return the first answer it reports."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        _daemon(body, read_end, write_end)
    os.close(write_end)
    os.waitpid(child, 0)
    chunks: list[bytes] = []
    deadline = time.monotonic() + answer_timeout
    try:
        while time.monotonic() < deadline:
            if select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))[0]:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_end)
    text = b"".join(chunks).decode()
    if not text:
        return {"error": f"no answer within {answer_timeout:g} s"}
    return json.loads(text.splitlines()[0])


def _daemon(body: Callable[[Callable[[dict], None]], None], read_end: int, write_end: int) -> None:
    try:
        os.close(read_end)
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        os.chdir("/")
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, write_end)
        os.closerange(write_end + 1, 65536)
        answered = []

        def report(answer: dict) -> None:
            os.write(write_end, (json.dumps(answer) + "\n").encode())
            os.close(write_end)
            answered.append(True)

        try:
            body(report)
        except Exception as exc:  # the parent reports it: a daemon has nowhere else to say it
            if not answered:
                report({"error": str(exc)})
    finally:
        os._exit(0)
