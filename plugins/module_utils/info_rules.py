# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure rules of ``postgres_lamassu_info``: the facts it reads, the phase of a service, the problems and
notices, and what blocks the cutover, the cleanup and the rollback. No connection: unit-tested as tables.

Phases of a service (decided by ``service_phase``, documented in the module):

* ``legacy``: the journal of the unified database records no copy of the legacy database into the schema;
* ``copied``: a recorded copy exists (and the schema is still that copy) while the legacy database still exists;
* ``migrated``: copied and at its target: with the migration files, no migration of the service is pending (a
  schema with a migration still pending is ``copied``, even when others ran); without them, the migrate module
  recorded that a run against a tree left nothing pending (``migration_checks``) and the schema's goose version is
  still the recorded one, or else (no record, or the version changed since: a ``down``) the schema's goose
  version moved past the copied version;
* ``cleaned``: the legacy database is gone and the schema holds a recorded copy.
"""

from __future__ import annotations

import datetime
import difflib
import re
from dataclasses import dataclass, field

from . import service_roles as roles
from .connection import ConnectionParams
from .dbcopy import source_changes
from .dbcopy.journal import CopyRecord
from .errors import Fix, InvalidInput, Problem
from .goose.store import History
from .lamassu import MOVE_MODES, SERVICES
from .names import check_identifier
from .online_checks import SourceFacts

PHASES = ("legacy", "copied", "migrated", "cleaned")
MINIMUM_SERVER_VERSION = 130000


@dataclass(frozen=True)
class InfoRequest:
    database: str
    services: tuple[str, ...]
    source_prefix: str = ""
    migrations_path: str | None = None
    # Files "<service>/<file>" of a migrations directory listed on the controller, instead of migrations_path.
    migration_files: tuple[str, ...] | None = None
    disk_margin: float = 1.5
    if_target_exists: str = "fail"
    # Cleanup may drop a legacy database that took writes after its copy (those writes are lost).
    accept_source_changes: bool = False
    # A port that differs from the server's own is a pooler or a proxy; false when it is a plain port mapping.
    proxy_check: bool = True
    # Pending migrations older than the current version will be applied (the migrate module's allow_missing).
    allow_missing: bool = False
    # The operator's service -> login role of the service (``service_roles.overrides``); the others are read.
    service_roles: dict = field(default_factory=dict, hash=False, compare=False)
    # How the copy runs (the plan's move_mode): offline, or online (``online_checks`` says whether it can).
    move_mode: str = "offline"

    def validate(self) -> None:
        check_identifier(self.database, "unified database")
        for service in self.services:
            check_identifier(service, "service schema")
            check_identifier(self.source_prefix + service, "legacy database", allow_system=True)
        if len(set(self.services)) != len(self.services):
            raise InvalidInput(f"The service list {list(self.services)} names a service twice")
        if self.database in {self.legacy_name(s) for s in self.services}:
            raise InvalidInput(
                f"The unified database {self.database!r} is the name of a legacy database of the run: choose another "
                "(lamassu_pg_database; lamassu by default, pki for upstream's feat/schema-db builds)"
            )
        if self.disk_margin < 1:
            raise InvalidInput(f"disk_margin must be at least 1.0, not {self.disk_margin}")
        if self.move_mode not in MOVE_MODES:
            raise InvalidInput(f"move_mode must be one of {', '.join(MOVE_MODES)}, not {self.move_mode!r}")

    def legacy_name(self, service: str) -> str:
        return self.source_prefix + service


@dataclass
class ServerFacts:
    version: str
    version_num: int
    encoding: str
    max_connections: int
    data_directory: str | None
    login_user: str
    superuser: bool
    createdb: bool
    in_recovery: bool = False
    listen_port: int | None = None  # the server's own port setting
    connected_port: int | None = None  # the TCP port the connection used; None over a Unix socket
    pooler: str | None = None  # what answered for a connection pooler (pgpool-II's SHOW pool_version)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class OtherDatabaseFacts:
    """The other name of the unified database (``lamassu`` / ``pki``), when it exists on the server."""

    database: str
    service_schemas: dict[str, int] = field(default_factory=dict)  # schema named after a service -> its tables
    error: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class LegacyFacts:
    database: str
    exists: bool = False
    owner: str | None = None
    owned: bool = False  # the login role is the owner or a member of it
    goose_owner: str | None = None  # the owner of its goose table: the service's role (``service_roles``)
    size_bytes: int | None = None
    goose_version: int | None = None
    history: History | None = None
    tables: list[dict] = field(default_factory=list)
    frozen: bool = False
    other_sessions: list[str] = field(default_factory=list)
    error: str | None = None
    stats: dict | None = None  # dbcopy.source_changes.read() of the source schema
    online: SourceFacts | None = None  # what the online move needs of it (online_checks.read_source)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("history", "stats", "online")}


@dataclass
class SchemaFacts:
    exists: bool = False
    owner: str | None = None
    goose_owner: str | None = None
    objects: list[str] = field(default_factory=list)
    tables: list[dict] = field(default_factory=list)
    goose_version: int | None = None
    history: History | None = None
    copy: dict | None = None
    freeze_recorded: bool = False
    recorded_stats: dict | None = None  # the source's counters at the snapshot of the recorded copy
    # migration_checks.MigrationCheck.as_dict() of the schema: a migrate run left nothing pending (services.<s>)
    migration_check: dict | None = None

    def as_dict(self) -> dict:
        hidden = ("history", "recorded_stats", "migration_check")
        return {k: v for k, v in self.__dict__.items() if k not in hidden}


@dataclass
class UnifiedFacts:
    database: str
    exists: bool = False
    can_create: bool = False
    journal: bool = False
    schemas: dict[str, SchemaFacts] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)  # what could not be read (returned in the module's notices)
    live_moves: list[str] = field(default_factory=list)  # services with an online move not switched yet

    def as_dict(self) -> dict:
        facts = {k: v for k, v in self.__dict__.items() if k not in ("schemas", "notices")}
        return {**facts, "schemas": self.schema_dicts()}

    def schema_dicts(self) -> dict:
        return {name: facts.as_dict() for name, facts in self.schemas.items()}


@dataclass
class DiskFacts:
    checked: bool = False
    path: str | None = None
    free_bytes: int | None = None
    needed_bytes: int = 0
    margin: float = 1.5
    reason: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class MigrationFacts:
    """Migration files of one service on the managed host, compared with the history that counts."""

    found: bool = False
    pending: list[dict] = field(default_factory=list)
    error: str | None = None
    current_version: int = 0  # highest applied version of the history compared with

    @property
    def out_of_order(self) -> list[int]:
        """Pending versions below the current one: goose (and the migrate module) refuses them without
        allow_missing."""
        return [entry["version"] for entry in self.pending if entry["version"] < self.current_version]

    @property
    def blocked_go(self) -> list[int]:
        return [entry["version"] for entry in self.pending if entry["kind"] == "go"]


# ------------------------------------------------------------------------------------------ pure rules
def service_phase(
    legacy_exists: bool,
    copy: dict | None,
    schema_version: int | None,
    pending: int | None,
    check: dict | None = None,
) -> str:
    """The phase of one service; ``pending`` is the number of pending migrations, None when not known (no tree);
    ``check``: the schema's record of a migrate run that left nothing pending (``migration_checks``), if any."""
    if copy is None:
        return "legacy"
    if not legacy_exists:
        return "cleaned"
    if pending is not None:  # the migrations are known: migrated means at the target, nothing pending
        return "migrated" if pending == 0 else "copied"
    if check_holds(check, schema_version):
        return "migrated"
    return "migrated" if (schema_version or 0) > (copy.get("goose_version") or 0) else "copied"


def check_holds(check: dict | None, schema_version: int | None) -> bool:
    """Whether a recorded migration check still describes the schema: nothing was pending and the goose version
    is the one recorded (a ``down`` since then makes it stale)."""
    return (
        check is not None
        and check.get("pending") == 0
        and schema_version is not None
        and check.get("goose_version") == schema_version
    )


def copy_summary(record: CopyRecord) -> dict:
    """The facts of a recorded copy that reports and cleanups need."""
    tables = [{"name": t.get("name"), "rows": t.get("rows"), "verified": t.get("verified")} for t in record.tables]
    return {
        "id": record.id,
        "source_database": record.source_database,
        "source_schema": record.source_schema,
        "verify": record.verify,
        "verified": record.verify != "none" and all(t["verified"] for t in tables),
        "goose_version": record.goose_version,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration_s": duration_between(record.started_at, record.finished_at),
        "rows": sum(t["rows"] or 0 for t in tables),
        "tables": tables,
        "collection_version": record.collection_version,
        "source_dropped_at": record.source_dropped_at,
    }


def duration_between(started: str | None, finished: str | None) -> float | None:
    """Seconds between two ``timestamptz::text`` values, None when either cannot be read."""
    try:
        start, end = (datetime.datetime.fromisoformat(_iso(value)) for value in (started, finished))
    except (TypeError, ValueError):
        return None
    return round((end - start).total_seconds(), 3)


def _iso(value: str) -> str:
    # timestamptz::text ends with "+00" (hours only); older Pythons want "+00:00". It also drops the trailing
    # zeros of the fraction (".5"), and Python < 3.11 reads only 3 or 6 digits there.
    value = re.sub(r"\.(\d{1,5})(?=[+-]|$)", lambda m: "." + m[1].ljust(6, "0"), value, count=1)
    if len(value) > 3 and value[-3] in "+-" and value[-2:].isdigit():
        return value + ":00"
    return value


def assess(
    request: InfoRequest,
    server: ServerFacts,
    legacy: dict[str, LegacyFacts],
    unified: UnifiedFacts,
    phases: dict[str, str],
    migrations: dict[str, MigrationFacts],
    disk: DiskFacts,
    others: list[OtherDatabaseFacts] = (),
) -> tuple[list[str], list[str]]:
    """Every blocking problem and every warning, in a stable order, all at once."""
    problems: list[str] = []
    warnings: list[str] = []
    if server.version_num < MINIMUM_SERVER_VERSION:
        problems.append(f"PostgreSQL {server.version} is too old: version 13 or newer is needed")
    problems += connection_problems(request, server)
    unknown = [s for s in request.services if s not in SERVICES]
    problems += [unknown_service_problem(name) for name in unknown]
    for other in others:
        problem, warning = other_database_findings(request, other)
        problems += [problem] if problem else []
        warnings += [warning] if warning else []
    needs_copy = [s for s in request.services if phases[s] == "legacy"]
    if not unified.exists and needs_copy and not (server.superuser or server.createdb):
        problems.append(
            f"login role {server.login_user!r} can neither create database {request.database!r} "
            "(no CREATEDB, not superuser) nor find it"
        )
    if unified.exists and needs_copy and not (server.superuser or unified.can_create):
        problems.append(
            f"login role {server.login_user!r} lacks the CREATE privilege on database {request.database!r} "
            "(needed to create the service schemas)"
        )
    for service in request.services:
        if service in unknown:
            continue
        facts = legacy[service]
        schema = unified.schemas.get(service, SchemaFacts())
        if facts.error:
            problems.append(f"legacy database {facts.database!r} cannot be read: {facts.error}")
        if phases[service] == "legacy":
            if not facts.exists:
                problems.append(
                    f"legacy database {facts.database!r} is missing and database {request.database!r} records "
                    f"no copy of it into schema {service!r}"
                )
            elif not (server.superuser or facts.owned):
                problems.append(
                    f"login role {server.login_user!r} is neither superuser nor a member of {facts.owner!r}, the "
                    f"owner of legacy database {facts.database!r} (needed to freeze, copy and later drop it)"
                )
            if schema.exists and schema.objects:
                shown = ", ".join(schema.objects[:10]) + (" ..." if len(schema.objects) > 10 else "")
                message = (
                    f"schema {service!r} of database {request.database!r} is occupied by objects that are not a "
                    f"recorded copy of {facts.database!r}: {shown}"
                )
                if request.if_target_exists == "replace":
                    warnings.append(message + " (they will be replaced by the copy)")
                else:
                    problems.append(Problem(message, Fix("if_target_exists", "replace", "the copy replaces them")))
        found = migrations.get(service)
        if found and found.error:
            problems.append(f"migrations of service {service!r} cannot be read: {found.error}")
        if found and found.blocked_go:
            versions = ", ".join(str(v) for v in found.blocked_go)
            problems.append(
                f"service {service!r} has pending Go migrations without a Python port, which cannot be run: "
                f"{versions}; upgrade Lamassu within the legacy layout first (its goose-lamassu Job runs them), "
                "or add a .py port of each"
            )
        if found and found.out_of_order and not request.allow_missing:
            versions = ", ".join(str(v) for v in found.out_of_order)
            problems.append(
                Problem(
                    f"service {service!r} has pending migrations older than its current version "
                    f"{found.current_version}: {versions}; goose refuses them (out of order): the tree and the "
                    "database come from different Lamassu releases, or set schema_migrate_allow_missing: true to "
                    "apply them",
                    Fix("allow_missing", True, "applies them out of order"),
                )
            )
        if facts.exists and facts.other_sessions and phases[service] == "legacy":
            warnings.append(
                f"legacy database {facts.database!r} has {len(facts.other_sessions)} other session(s) connected"
            )
    if disk.checked and disk.free_bytes is not None and disk.free_bytes < disk.needed_bytes:
        problems.append(
            f"not enough free disk space on {disk.path}: {disk.free_bytes} bytes free, {disk.needed_bytes} bytes "
            f"needed (legacy databases still to copy x {disk.margin})"
        )
    elif not disk.checked and disk.needed_bytes:
        warnings.append(f"free disk space for the copy was not checked: {disk.reason}")
    return problems, warnings


def unknown_service_problem(name: str) -> str:
    """A service name that is none of Lamassu's, with the closest one named."""
    close = difflib.get_close_matches(name, SERVICES, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{name!r} is not a Lamassu service: {hint}the services are {', '.join(SERVICES)} (lamassu_services)"


DIRECT_CONNECTION_NEEDS = (
    "the copy needs exported snapshots, session advisory locks and pg_terminate_backend on a direct connection to "
    "the primary"
)


def connection_problems(request: InfoRequest, server: ServerFacts) -> list[str]:
    """A standby, or a connection through a pooler or proxy: the copy cannot work through either."""
    problems = []
    if server.in_recovery:
        problems.append(
            "the server is a standby (pg_is_in_recovery() is true): "
            f"{DIRECT_CONNECTION_NEEDS}; point lamassu_pg_host at the primary"
        )
    if server.pooler:
        problems.append(
            f"the connection goes through {server.pooler}, not to PostgreSQL itself: {DIRECT_CONNECTION_NEEDS}; "
            "point lamassu_pg_host/lamassu_pg_port at the PostgreSQL server"
        )
    elif (
        request.proxy_check
        and server.connected_port is not None
        and server.listen_port is not None
        and server.connected_port != server.listen_port
    ):
        problems.append(
            Problem(
                f"the connection used port {server.connected_port} but the server listens on port "
                f"{server.listen_port}: a pooler (PgBouncer, pgpool-II) or a proxy sits in between, and "
                f"{DIRECT_CONNECTION_NEEDS}; point lamassu_pg_host/lamassu_pg_port at the PostgreSQL server (if that "
                "port is only a plain port mapping to the server, e.g. docker -p, set lamassu_pg_proxy_check: false)",
                Fix("proxy_check", False, "only when that port is a plain port mapping to the server"),
            )
        )
    return problems


def other_database_findings(request: InfoRequest, other: OtherDatabaseFacts) -> tuple[str | None, str | None]:
    """(problem, warning) about the other name of the unified database existing on the server."""
    if other.error:
        return None, f"database {other.database!r} exists but cannot be read: {other.error}"
    if not other.service_schemas:
        return None, (
            f"database {other.database!r} exists on the server and holds no Lamassu service schema; this run uses "
            f"{request.database!r}: make sure your Lamassu build reads {request.database!r}"
        )
    shown = ", ".join(f"{name} ({tables} tables)" for name, tables in other.service_schemas.items())
    return (
        Problem(
            f"database {other.database!r} already holds Lamassu service schemas ({shown}) while this run copies "
            f"into {request.database!r}: a Lamassu build that reads {other.database!r} would start on that data, "
            f"not on the copy. Set lamassu_pg_database: {other.database} if your build reads it (upstream's schema "
            f"branch feat/schema-db reads pki), or drop database {other.database!r} if it is a leftover",
            Fix("database", other.database, "only if your Lamassu build reads that database"),
        ),
        None,
    )


# Why a service's legacy database may not be dropped yet, in the order the cleanup lists them.
CLEANUP_BLOCKERS = ("not_copied", "not_verified", "other_sessions", "source_changed")
SOURCE_CHANGES_REMEDY = (
    "copy it again (-e db_to_schema_if_target_exists=replace) or accept losing the writes "
    "(-e lamassu_accept_source_changes=true)"
)


def cleanup_blockers(service: str, result: dict, legacy: dict, accept_source_changes: bool) -> dict[str, str]:
    """What keeps the legacy database of one service (``result``: its entry of ``services``, ``legacy``: of
    ``legacy``) from being dropped, by kind of blocker; empty when it may be dropped or is gone already."""
    phase = result["phase"]
    if phase == "cleaned":
        return {}
    if phase == "legacy":
        return {"not_copied": f"service {service!r} is not copied yet (phase legacy)"}
    found: dict[str, str] = {}
    if not result["verified"]:
        found["not_verified"] = f"the recorded copy of service {service!r} was not verified"
    if legacy.get("other_sessions"):
        found["other_sessions"] = f"other sessions are connected to legacy database {legacy['database']!r}"
    if result.get("source_changed") and not accept_source_changes:
        changes = source_changes.summary(result.get("source_changes") or ["its statistics cannot tell"])
        found["source_changed"] = f"service {service!r} took writes after its copy ({changes}); {SOURCE_CHANGES_REMEDY}"
    return found


def upgrade_done(services: dict[str, dict], problems: list[str]) -> bool:
    """Whether an upgrade has nothing left to do: every service migrated (with the migrations given: nothing
    pending) or cleaned, no legacy database changed after its copy (never a guess: a copy that cannot prove it is
    counted as changed), and no problem."""
    return not problems and all(
        result["phase"] in ("migrated", "cleaned") and not result.get("source_changed") for result in services.values()
    )


def cutover_blockers(services: dict[str, dict], accept_source_changes: bool) -> list[str]:
    """Why the services may not be pointed at their schema: a legacy database that took writes after its copy."""
    if accept_source_changes:
        return []
    return [
        f"the legacy database of service {s!r} took writes after its copy "
        f"({source_changes.summary(result.get('source_changes') or ['its statistics cannot tell'])}); "
        f"{SOURCE_CHANGES_REMEDY}"
        for s, result in services.items()
        if result.get("source_changed")
    ]


def empty_schemas(schemas: dict[str, dict]) -> list[str]:
    """Service schemas that exist, hold nothing and are no recorded copy (what rollback may drop as made by us)."""
    return [name for name, facts in schemas.items() if facts["exists"] and not facts["copy"] and not facts["objects"]]


def recorded_schemas(schemas: dict[str, dict]) -> list[str]:
    """Schemas holding a recorded copy, then those with only a recorded freeze: what rollback.yml removes."""
    copies = [name for name, facts in schemas.items() if facts["copy"]]
    return copies + [name for name, facts in schemas.items() if not facts["copy"] and facts["freeze_recorded"]]


def cleanup_decision(services: dict[str, dict], legacy: dict[str, dict], accept_source_changes: bool) -> dict:
    """Which legacy databases the cleanup may drop and, all at once, what blocks it (per kind, then per service)."""
    per_service = {s: cleanup_blockers(s, services[s], legacy[s], accept_source_changes) for s in services}
    droppable = [s for s in services if services[s]["phase"] in ("copied", "migrated")]
    return {
        "droppable": droppable,
        "databases": [legacy[s]["database"] for s in droppable],
        "blockers": [found[kind] for kind in CLEANUP_BLOCKERS for found in per_service.values() if kind in found],
        "services": {s: list(found.values()) for s, found in per_service.items()},
    }


def service_result(
    request: InfoRequest,
    params: ConnectionParams,
    service: str,
    phase: str,
    legacy: LegacyFacts,
    schema: SchemaFacts | None,
    migrations: MigrationFacts | None,
    changes: list[str] | None = None,
) -> dict:
    """``changes``: what the legacy database took since the recorded copy, None when there is nothing to compare."""
    schema = schema or SchemaFacts()
    copy = schema.copy or {}
    role, role_from = service_role(request, service, legacy, schema)
    return {
        "phase": phase,
        "service_role": role,
        "service_role_from": role_from,
        "legacy_database": legacy.database,
        "legacy_goose_version": legacy.goose_version,
        "schema_goose_version": schema.goose_version,
        "copied_goose_version": copy.get("goose_version"),
        "rows_copied": copy.get("rows"),
        "copy_duration_s": copy.get("duration_s"),
        "verified": bool(copy.get("verified")),
        "frozen": legacy.frozen,
        "source_changed": bool(changes) if changes is not None else None,
        "source_changes": changes or [],
        "pending_migrations": migrations.pending if migrations else None,
        "migration_check": schema.migration_check,
        "blocked_go_migrations": migrations.blocked_go if migrations else [],
        "dsn": params.dsn(request.database, service, role),
    }


def service_role(request: InfoRequest, service: str, legacy: LegacyFacts, schema: SchemaFacts) -> tuple:
    """The login role of ``service`` and where it was read from: the operator's, else the legacy database's
    (its goose table's owner, else its owner), else, once that database is gone, the schema's."""
    given = request.service_roles.get(service)
    if legacy.exists:
        return roles.decide(given, legacy.goose_owner, legacy.owner)
    return roles.decide(given, schema.goose_owner, schema.owner if schema.exists else None)
