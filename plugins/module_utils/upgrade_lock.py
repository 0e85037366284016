# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The server-wide lock of the runs that change the Lamassu layout (upgrade, rollback, cleanup).

One session advisory lock in the maintenance database (the unified database may not exist yet). Module
processes end with their task, so the lock is held by a detached holder process: ``take`` starts it and
returns once it holds the lock (or fails naming the run that holds it). The holder keeps the lock for a lease
that its run renews (``take`` again by the same run: a NOTIFY the holder listens for); it ends its session when
the lease runs out, at its time limit, on ``release``, when the controller process it watches ends, or when the
server goes away. Whatever ends it, the server frees the lock with the session, so a run that is gone (its
controller killed, over SSH too) keeps the lock for one lease at most.

The holder's ``application_name`` names its run and its lease end in server time
(``lamassu-lock <run id> <lease end, epoch s> <controller pid>@<controller host>``, cut to 63 bytes): that is how
a refused run names the holder, how ``release`` and a renewal find their own holder and no other, and how a later
run sees that a lease has run out and takes the lock over.
"""

from __future__ import annotations

import re
import select
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ._pg import psycopg2, sql
from .connection import ConnectionParams, connect
from .detached import ProcessWatch, detach
from .errors import Fix, InvalidInput, LamassuError, OperationFailed
from .locks import UPGRADE_LOCK_ID
from .session import Session

LOCK_DATABASE = "postgres"
HOLDER_PREFIX = "lamassu-lock"
NOTIFY_CHANNEL = "lamassu_lock"
DEFAULT_HOLD_TIMEOUT = 43200
DEFAULT_LEASE = 600
# A lease is taken over this long after its end (server time): a holder ends itself at its end, by its own clock.
TAKEOVER_GRACE_SECONDS = 30
# A lock whose holder is no longer listed belongs to a run whose session is ending: tried again this long.
TAKEOVER_SECONDS = 5.0
RELEASE_WAIT_SECONDS = 10.0
RENEW_WAIT_SECONDS = 5.0
POLL_SECONDS = 0.2
HOLDER_CHECK_SECONDS = 1.0
APPLICATION_NAME_BYTES = 63  # NAMEDATALEN - 1: the server cuts longer names
_LONGEST_LEASE_END = 10**10 - 1  # epoch seconds, ten digits until the year 2286

TRY_LOCK = "SELECT pg_try_advisory_lock(%s)"
TERMINATE = "SELECT pg_terminate_backend(%s)"
NOTIFY = "SELECT pg_notify(%s, %s)"
SERVER_EPOCH = "SELECT floor(extract(epoch FROM now()))::bigint"
_SET_NAME = "SELECT set_config('application_name', %s, false)"
_NOTIFY_AT = "SELECT floor(extract(epoch FROM now()))::bigint FROM pg_notify(%s, %s)"
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
# The lease end is missing in the names of the holders of before the lease (they are never taken over).
_HOLDER_NAME = re.compile(rf"^{HOLDER_PREFIX} (\S+) (?:(\d+) )?(\d+)@(\S*)$")


class LockHeld(LamassuError):
    """Another run holds the lock; nothing was changed."""


def utc(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


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
        if "@" not in self.holder_name(_LONGEST_LEASE_END):
            raise InvalidInput(f"The lock owner's run_id {self.run_id!r} is too long to name the holder session")

    @property
    def key(self) -> str:
        """The run, uncut: what a renewal sends the holder."""
        return f"{self.run_id} {self.controller_pid}@{self.controller_host}"

    def holder_name(self, lease_until: int | None) -> str:
        """The holder's name with that lease end (the holders of before the lease have none)."""
        lease = "" if lease_until is None else f"{lease_until} "
        name = f"{HOLDER_PREFIX} {self.run_id} {lease}{self.controller_pid}@{self.controller_host}"
        return name.encode()[:APPLICATION_NAME_BYTES].decode(errors="ignore")

    def owns(self, application_name: str) -> bool:
        """Whether a holder of that name is this run's, whatever its lease end (the server may have cut the host)."""
        return application_name == self.holder_name(lease_until(application_name))

    @classmethod
    def parse(cls, application_name: str) -> Owner | None:
        match = _HOLDER_NAME.match(application_name)
        return cls(match[1], match[4], int(match[3])) if match else None


def lease_until(application_name: str) -> int | None:
    """The lease end (epoch seconds, server time) a holder's name carries; None for other sessions."""
    match = _HOLDER_NAME.match(application_name)
    return int(match[2]) if match and match[2] else None


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

    @property
    def lease_until(self) -> int | None:
        return lease_until(self.application_name)

    def lapsed(self, server_now: int) -> bool:
        """Its lease ran out (with a grace for the holder to notice): a Lamassu holder that failed to end."""
        end = self.lease_until
        return end is not None and end + TAKEOVER_GRACE_SECONDS < server_now

    def describe(self) -> str:
        owner = self.owner
        if not self.backend_pid:
            return "a session that is ending (its server process is no longer listed)"
        session = f"server process {self.backend_pid}, client {self.client}, holding it since {self.since}"
        if owner is None:
            return f"a session that is not a Lamassu run ({session}, application {self.application_name!r})"
        lease = f", lease until {utc(self.lease_until)}" if self.lease_until is not None else ""
        return (
            f"run {owner.run_id} (started {run_started(owner.run_id)}) of controller {owner.controller_host}, "
            f"process {owner.controller_pid} ({session}{lease})"
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
            "lease_until": self.lease_until,
        }


@dataclass(frozen=True)
class LockRequest:
    """What ``take`` is asked: the run, its lease and time limit, the process to watch, the run to break.

    ``renewal`` says that the run holds the lock already (a renewal between steps): finding it free then means
    that the lease ran out, and the lock is taken again.
    """

    owner: Owner
    lease: int = DEFAULT_LEASE
    timeout: int = DEFAULT_HOLD_TIMEOUT
    watch_pid: int | None = None
    break_run: str | None = None
    renewal: bool = False

    def validate(self) -> None:
        self.owner.validate()
        for name, value in (("timeout", self.timeout), ("lease", self.lease)):
            if value <= 0:
                raise InvalidInput(f"The lock {name} must be a positive number of seconds, not {value}")
        if self.watch_pid and not ProcessWatch(self.watch_pid).alive():
            # a holder watching a process it cannot see would free the lock as soon as it took it
            raise InvalidInput(
                f"The controller process {self.watch_pid} is not running where the module runs: watch_controller "
                "needs the module to run on the controller (ansible_connection=local)"
            )


def run_started(run_id: str) -> str:
    """The start time a run id (``%Y%m%dT%H%M%SZ``, as the playbooks name runs) stands for; else the id."""
    match = re.fullmatch(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z", run_id)
    return "{}-{}-{} {}:{}:{} UTC".format(*match.groups()) if match else run_id


def refusal(holder: Holder, location: str) -> str:
    said = (
        f"The upgrade lock of the server {location} is held by {holder.describe()}. Only one upgrade, rollback "
        "or cleanup runs on a server at a time; nothing was changed."
    )
    owner = holder.owner
    if owner is None:
        return (
            f"{said} Run again when that session has ended; if it should not hold the lock, end it "
            f"(SELECT pg_terminate_backend({holder.backend_pid})) and run again."
        )
    end = holder.lease_until
    wait = f"wait until its lease runs out at {utc(end)} (or that run ends)" if end is not None else "wait for that run"
    return f"{said} Either {wait} and run again, or, if that run is gone, run again with -e lamassu_break_lock={owner.run_id}."


def break_fix(holder: Holder) -> Fix | None:
    """Breaking the lock of the run that holds it; none for a session that is no run of the collection."""
    if holder.owner is None:
        return None
    return Fix("break_lock", holder.owner.run_id, "ends the lock of that run: only when that run is gone")


def judge(holder: Holder, break_run: str | None, server_now: int, location: str) -> tuple[bool, str]:
    """Whether a run may end ``holder`` and take the lock: (True, the warning to give) or (False, the refusal)."""
    owner = holder.owner
    if break_run is not None:
        if owner is None or owner.run_id != break_run:
            return False, (
                f"break_lock names run {break_run}, but the upgrade lock of the server {location} is held by "
                f"{holder.describe()}; nothing was changed."
            )
        end = holder.lease_until
        lease = f"its lease ran until {utc(end)}" if end is not None else "it had no lease"
        return True, f"The upgrade lock of run {break_run} was broken on request (break_lock); {lease}."
    if owner is not None and holder.lapsed(server_now):
        return True, (
            f"Took over the upgrade lock of run {owner.run_id} (controller {owner.controller_host}, process "
            f"{owner.controller_pid}): its lease ended at {utc(holder.lease_until)} and was not renewed."
        )
    return False, refusal(holder, location)


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


def end_sessions(session: Session, holders: list[Holder], check_mode: bool) -> None:
    """Terminate the holders' sessions and wait until the server lists them no more (so the lock is free)."""
    for holder in holders:
        session.execute(TERMINATE, (holder.backend_pid,), what="end the upgrade lock holder")
    pids = [h.backend_pid for h in holders]
    deadline = time.monotonic() + RELEASE_WAIT_SECONDS
    while pids and not check_mode and session.fetch_value(_SESSIONS_LEFT, (pids,)):
        if time.monotonic() >= deadline:
            raise OperationFailed(f"The upgrade lock holder sessions {pids} did not end within the wait")
        time.sleep(POLL_SECONDS)


def take(params: ConnectionParams, request: LockRequest, check_mode: bool, warn: Callable[[str], None]) -> dict:
    """Have a detached holder take the lock for the request's run, renew the lease of the run's holder, or take
    over a lapsed (or broken) lock; else raise LockHeld naming the run that holds it."""
    request.validate()
    queries: list[str] = []
    result = {"changed": False, "lock": lock_info(params), "queries": queries, "renewed": False, "retaken": False}
    session = Session(connect(params, LOCK_DATABASE), queries, dry_run=check_mode)
    try:
        holders = read_holders(session)
        ours = next((h for h in holders if request.owner.owns(h.application_name)), None)
        if ours is not None:
            return {**result, **renew(session, ours, request, check_mode)}
        if holders:
            holder = holders[0]
            allowed, words = judge(
                holder, request.break_run, session.fetch_value(SERVER_EPOCH), result["lock"]["server"]
            )
            if not allowed:
                raise LockHeld(words, {**result, "holder": holder.as_dict()}, break_fix(holder))
            warn(words)
            result["took_over"] = holder.as_dict()
            end_sessions(session, [holder], check_mode)
        planned = session.render(TRY_LOCK, (UPGRADE_LOCK_ID,))
    finally:
        session.close()  # before the fork: the holder must not share this connection
    if request.renewal:
        result["retaken"] = True
        warn(f"The lease of run {request.owner.run_id} on the upgrade lock had run out; the lock is taken again.")
    if check_mode:
        return {**result, "changed": True, "holder": None, "queries": [*queries, planned]}
    answer = detach(lambda report: hold(params, request, report), params.connect_timeout + 30)
    if "error" in answer:
        raise OperationFailed(f"The upgrade lock holder could not start: {answer['error']}", result)
    holder = Holder(**answer["holder"])
    if not answer["held"]:
        raise LockHeld(
            refusal(holder, result["lock"]["server"]), {**result, "holder": holder.as_dict()}, break_fix(holder)
        )
    return {**result, "changed": True, "holder": holder.as_dict(), "queries": [*queries, planned]}


def renew(session: Session, ours: Holder, request: LockRequest, check_mode: bool) -> dict:
    """Ask the run's holder to extend its lease, and wait until its name shows the new end."""
    message = (NOTIFY_CHANNEL, f"{request.owner.key} {request.lease}")
    if check_mode:
        return {"holder": ours.as_dict(), "queries": [session.render(NOTIFY, message)]}
    wanted = session.fetch_value(_NOTIFY_AT, message) + request.lease
    deadline = time.monotonic() + RENEW_WAIT_SECONDS
    while True:
        now = [h for h in read_holders(session) if h.backend_pid == ours.backend_pid]
        if now and (now[0].lease_until or 0) >= wanted:
            return {"holder": now[0].as_dict(), "renewed": True, "queries": [session.render(NOTIFY, message)]}
        if not now or time.monotonic() >= deadline:
            raise OperationFailed(
                f"The upgrade lock holder of run {request.owner.run_id} (server process {ours.backend_pid}) did not "
                f"renew its lease within {RENEW_WAIT_SECONDS:g} s"
            )
        time.sleep(POLL_SECONDS)


def release(params: ConnectionParams, owner: Owner | None, check_mode: bool) -> dict:
    """End the holder session of ``owner`` (of anyone when None); the server frees the lock with it."""
    if owner is not None:
        owner.validate()
    queries: list[str] = []
    session = Session(connect(params, LOCK_DATABASE), queries, dry_run=check_mode)
    try:
        holders = [h for h in read_holders(session) if owner is None or owner.owns(h.application_name)]
        end_sessions(session, holders, check_mode)
    finally:
        session.close()
    return {
        "changed": bool(holders),
        "lock": lock_info(params),
        "released": [h.as_dict() for h in holders],
        "queries": queries,
    }


def requested_lease(payloads: list[str], owner: Owner) -> int | None:
    """The lease the last renewal for ``owner`` among the notification payloads asks for; None when none is."""
    lease = None
    for payload in payloads:
        key, seconds = payload.rsplit(" ", 1) if " " in payload else (payload, "")
        if key == owner.key and seconds.isdigit() and int(seconds) > 0:
            lease = int(seconds)
    return lease


def hold(params: ConnectionParams, request: LockRequest, report: Callable[[dict], None]) -> None:
    """The holder's life: name itself with its lease, take the lock, report, then keep the session while the
    run renews the lease and nothing else ends it."""
    conn = connect(params, LOCK_DATABASE)
    try:
        session = Session(conn, [])
        session.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
        lease_end = extend(session, request.owner, request.lease)
        other = try_take(session)
        if other is not None:
            report({"held": False, "holder": asdict(other)})
            return
        ours = [h for h in read_holders(session) if h.backend_pid == conn.get_backend_pid()]
        report({"held": True, "holder": asdict(ours[0])})
        _keep(session, request, lease_end)
    finally:
        conn.close()


def extend(session: Session, owner: Owner, lease: int) -> float:
    """Name the holder with a lease end of ``lease`` seconds from now by the server's clock; return that end by
    the holder's own (monotonic) clock, which cannot be set back or forth."""
    started = time.monotonic()
    session.fetch_value(_SET_NAME, (owner.holder_name(session.fetch_value(SERVER_EPOCH) + lease),))
    return started + lease


def _keep(session: Session, request: LockRequest, lease_end: float) -> None:
    conn = session.conn
    deadline = time.monotonic() + request.timeout
    watched = ProcessWatch(request.watch_pid) if request.watch_pid else None
    try:
        while watched is None or watched.alive():
            left = min(deadline, lease_end) - time.monotonic()
            if left <= 0:
                return
            if select.select([conn], [], [], min(HOLDER_CHECK_SECONDS, left))[0]:
                # a renewal, or the termination notice or the end of the session (poll raises then)
                conn.poll()
                lease = requested_lease([n.payload for n in conn.notifies], request.owner)
                del conn.notifies[:]
                if lease is not None:
                    lease_end = extend(session, request.owner, lease)
    except psycopg2.Error:
        pass  # the session was ended (release, takeover, server shutdown): so is the lock
