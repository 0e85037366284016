# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every part of the copy shares: the request, the staging name, and ``CopyJob``, one run's state and result."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass

from .._pg import extensions
from ..connection import ConnectionParams, connect
from ..errors import Fix, InvalidInput
from ..lamassu import DEFAULT_DATABASE, JOURNAL_SCHEMA
from ..names import check_identifier
from . import verify
from .hooks import Hooks
from .phases import PLAN
from .progress import NoProgress
from .stream import prepare_session

STAGING_PREFIX = "lamassu_stage_"
STAGING_MARKER = "lamassuiot.postgres db_to_schema staging schema; dropped by the next run"
APPLICATION = "lamassuiot.postgres db_to_schema"
MESSAGE_OBJECTS = 20
# How long a lock or a session of a run that has just closed its connection may still be listed.
LOCK_RETRY_SECONDS = 5
REMEDY = "copy it again with if_target_exists=replace, or accept losing those writes with accept_source_changes=true"
RECOPY = Fix("if_target_exists", "replace", "copies the source database again, with the writes made after its copy")
TABLE_RESULT_KEYS = ("name", "rows", "bytes", "seconds", "verified")
ONLINE_CHOICES = ("off", "live", "switch")


def online_line(mode: str, applied: dict | None, rows_checked: int | None, published: bool) -> str:
    """What the online move did, in one line (the db_to_schema role's summary, the module log)."""
    parts = [f"online {mode}"]
    if applied:
        parts.append(
            f"{applied['transactions']} source transactions ({applied['changes']} changes) applied in "
            f"{applied['seconds']:.1f} s, {applied['lag_bytes'] / 1e6:.1f} MB / {applied['lag_s']:.1f} s behind"
        )
    if rows_checked is not None:
        parts.append(f"{rows_checked} changed rows compared")
    parts.append("published" if published else "not published yet")
    return ", ".join(parts)


def staging_name(target_schema: str) -> str:
    """Deterministic per target schema; a hash suffix keeps long names unique within 63 bytes."""
    name = STAGING_PREFIX + target_schema
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha256(target_schema.encode()).hexdigest()[:8]
    head = name.encode()[: 63 - 9].decode("utf-8", "ignore")
    return f"{head}_{digest}"


@dataclass(frozen=True)
class CopyRequest:
    source_database: str
    source_schema: str = "public"
    target_database: str = DEFAULT_DATABASE
    target_schema: str | None = None
    state: str = "present"
    jobs: int = 2
    verify: str = "checksum"
    freeze_source: bool = False
    if_target_exists: str = "fail"
    drop_source: bool = False
    discard_changes: bool = False
    accept_source_changes: bool = False
    owner: str | None = None  # of the published schema; None: the source schema's
    service_role: str | None = None  # the service's login role; None: read from the source
    online: str = "off"  # off | live | switch (online.py)

    @property
    def target(self) -> str:
        return self.target_schema or self.source_database

    def validate(self) -> None:
        check_identifier(self.source_database, "source database", allow_system=True)
        check_identifier(self.source_schema, "source schema", allow_system=True)
        check_identifier(self.target_database, "target database", allow_system=True)
        check_identifier(self.target, "target schema")
        if self.owner:
            check_identifier(self.owner, "owner", allow_system=True)
        if self.service_role:
            check_identifier(self.service_role, "service role", allow_system=True)
        if self.target.startswith(STAGING_PREFIX) or self.target == JOURNAL_SCHEMA:
            raise InvalidInput(f"The target schema name {self.target!r} is reserved for the copy's own use")
        if self.source_database == self.target_database:
            raise InvalidInput(
                f"The source and target database are both {self.source_database!r}; the copy moves a schema "
                "into another database"
            )
        if self.jobs < 1:
            raise InvalidInput(f"jobs must be at least 1, not {self.jobs}")
        if self.verify not in verify.VERIFY_MODES:
            raise InvalidInput(f"verify must be one of {', '.join(verify.VERIFY_MODES)}")
        if self.drop_source and self.verify == "none":
            raise InvalidInput("drop_source needs a verified copy: use verify=count or verify=checksum")
        if self.online not in ONLINE_CHOICES:
            raise InvalidInput(f"online must be one of {', '.join(ONLINE_CHOICES)}, not {self.online!r}")
        if self.online == "live" and self.drop_source:
            raise InvalidInput("drop_source needs the published copy: use it with online=switch, not online=live")
        if self.discard_changes and self.state != "absent" and self.if_target_exists != "replace":
            raise InvalidInput("discard_changes only applies to state=absent or if_target_exists=replace")


@dataclass
class TableOutcome:
    name: str
    rows: int
    bytes: int
    seconds: float
    verified: bool
    checksum: str | None = None
    problem: str | None = None

    def result(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k in TABLE_RESULT_KEYS}


class CopyJob:
    """One run of the module: its request, the statements it executed, where it is, and its result skeleton.

    What copy workers read (``params``, ``request``, ``staging``, ``hooks``) is set here once; ``progress``
    hears of each phase (set through ``phase``) and each table done.
    """

    def __init__(
        self,
        params: ConnectionParams,
        request: CopyRequest,
        check_mode: bool,
        hooks: Hooks,
        log=None,
        progress: NoProgress | None = None,
    ):
        self.params = params
        self.request = request
        self.check_mode = check_mode
        self.hooks = hooks
        self._log_to = log or (lambda message: None)
        self.progress = progress or NoProgress()
        self._phase = PLAN
        self.queries: list[str] = []
        self.started = time.monotonic()
        self.staging = staging_name(request.target)
        self.frozen = False
        self.source_dropped = False
        self.before: dict | None = None  # the copy and its source as the run found them (removal.found)
        self.source_stats: dict | None = None  # the source's counters at the snapshot of this run's copy
        self.source_changes: list[str] | None = None  # since the recorded copy; None while not known
        self.source_owner: str | None = None  # the owner of the source database, once read
        self.service_role: str | None = None  # the service's login role (``access``), once decided
        self.move_name: str | None = None  # the online move's slot and publication (``online``)
        self.applied = None  # what the online move's apply did in this run (``apply.Applied``)
        self.switch_checked: int | None = None  # rows changed during the live phase that the switch compared

    @property
    def phase(self) -> str:
        """Where the run is: plan, freeze, snapshot, ddl, data, verify, final, publish, drop."""
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        self._phase = value
        self.progress.phase(value)

    @property
    def route(self) -> str:
        req = self.request
        return f"{req.source_database}.{req.source_schema} -> {req.target_database}.{req.target}"

    def who(self) -> str:
        """Which copy, and as which login role: a privilege error names neither."""
        return f"The copy {self.route} (login role {self.params.user!r})"

    @property
    def application(self) -> str:
        """The start of the ``application_name`` of every session of this run; each adds its role."""
        return f"{APPLICATION} {self.request.source_database}->{self.request.target}"

    def log(self, message: str) -> None:
        self._log_to(f"db_to_schema {self.route}: {message}")

    def online_result(self, move) -> dict:
        """The ``online`` key of the result: where the online move is and what this run applied."""
        applied = self.applied.result() if self.applied else None
        published = self.request.online == "switch"
        return {
            "mode": self.request.online,
            **move.summary(),
            "applied": applied,
            "rows_checked": self.switch_checked,
            "published": published,
            "line": online_line(self.request.online, applied, self.switch_checked, published),
        }

    def open_reader(self, database: str, role: str):
        """A read-only, repeatable-read connection with the copy's session settings."""
        conn = connect(self.params, database, autocommit=False)
        prepare_session(conn, f"{self.application} {role}")
        conn.set_session(isolation_level=extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        return conn

    def open_source(self, role: str):
        return self.open_reader(self.request.source_database, role)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def partial(self) -> dict:
        return {"queries": self.queries, "phase": self.phase}

    def result(self, changed: bool, goose_version=None, tables=None) -> dict:
        req = self.request
        return {
            "changed": changed,
            "source": {
                "database": req.source_database,
                "schema": req.source_schema,
                "goose_version": goose_version,
                "frozen": self.frozen,
                "dropped": self.source_dropped,
            },
            "target": {"database": req.target_database, "schema": req.target},
            "tables": tables or [],
            "source_changed": bool(self.source_changes) if self.source_changes is not None else None,
            "source_changes": self.source_changes or [],
            "duration_s": round(self.elapsed(), 3),
            "service_role": self.service_role,
            "dsn": self.params.dsn(req.target_database, req.target, self.service_role),
            "queries": self.queries,
            "before": self.before,
        }


def database_exists(session, name: str) -> bool:
    return bool(session.fetch_value("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)))
