# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only facts for preflight, verification and reports: gather (this file) -> assess (``info_rules``) -> result.

Copies and freezes are read through ``dbcopy.journal`` and ``dbcopy.freeze``; goose versions through
``goose.store``; this file owns only the catalog reads of sizes, tables and privileges, and the order of the
reads. The phases and every decision are ``info_rules``'s.
"""

from __future__ import annotations

import os
import shutil

from . import info_rules as rules
from . import online_checks
from ._compat import zip_strict
from ._pg import psycopg2
from .connection import ConnectionParams, connect
from .dbcopy import freeze, source_changes
from .dbcopy import online as online_moves
from .dbcopy.journal import Journal
from .errors import InvalidInput, LamassuError, OperationFailed
from .goose.plan import pending_entries
from .goose.source import collect
from .goose.store import History, VersionStore
from .lamassu import GOOSE_TABLE, JOURNAL_SCHEMA, MAINTENANCE_DATABASE, UNIFIED_DATABASE_NAMES
from .migration_checks import CHECKS_TABLE, read_or_none
from .migration_tree import find_root
from .service_roles import goose_table_owner
from .session import Session

LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")
SOURCE_SCHEMA = "public"


def is_local(params: ConnectionParams) -> bool:
    """Whether the server runs on the host this code runs on (the managed node)."""
    return bool(params.unix_socket) or params.host in LOCAL_HOSTS or params.host.startswith("/")


def measure_disk(params: ConnectionParams, data_directory: str | None, needed: int, margin: float) -> rules.DiskFacts:
    disk = rules.DiskFacts(needed_bytes=int(needed * margin), margin=margin)
    if not disk.needed_bytes:
        disk.reason = "nothing left to copy"
        return disk
    if not is_local(params):
        disk.reason = f"the server {params.location} is not on the managed host"
    elif not data_directory:
        disk.reason = "the login role may not read the data_directory setting (superuser or pg_read_all_settings)"
    elif not os.path.isdir(data_directory):
        disk.reason = f"the data directory {data_directory} is not on the managed host"
    else:
        try:
            disk.free_bytes = shutil.disk_usage(data_directory).free
        except OSError as exc:
            disk.reason = f"cannot read the free space of {data_directory}: {exc.strerror}"
        else:
            disk.checked = True
            disk.path = data_directory
    return disk


# ------------------------------------------------------------------------------------------ reads
def read_server(session: Session) -> rules.ServerFacts:
    row = session.fetch_one(
        """
        SELECT current_setting('server_version'), current_setting('server_version_num')::int,
               pg_encoding_to_char(d.encoding), current_setting('max_connections')::int,
               (SELECT setting FROM pg_settings WHERE name = 'data_directory'),
               current_user::text, r.rolsuper, r.rolcreatedb, pg_is_in_recovery(), current_setting('port')::int
        FROM pg_database d, pg_roles r WHERE d.datname = current_database() AND r.rolname = current_user
        """
    )
    server = rules.ServerFacts(*row)
    info = session.conn.info
    # Over TCP the client knows the port it reached; a Unix socket's name carries the server's own port.
    if info.host and not info.host.startswith("/"):
        server.connected_port = int(info.port)
    server.pooler = read_pooler(session)
    return server


def read_pooler(session: Session) -> str | None:
    """pgpool-II answers SHOW pool_version itself; PostgreSQL has no such setting."""
    try:
        version = session.fetch_value("SHOW pool_version")
    except psycopg2.Error:  # autocommit: the failed statement leaves no transaction to roll back
        return None
    return f"pgpool-II {version}" if version else "pgpool-II"


def read_other_database(params: ConnectionParams, name: str, services: tuple[str, ...]) -> rules.OtherDatabaseFacts:
    """The schemas named after a service in the other unified database, with their number of tables."""
    facts = rules.OtherDatabaseFacts(database=name)
    try:
        conn = connect(params, name)
    except LamassuError as exc:
        facts.error = str(exc)
        return facts
    try:
        rows = Session(conn, []).fetch_all(
            """
            SELECT n.nspname::text, count(c.oid)::int FROM pg_namespace n
            LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
            WHERE n.nspname = ANY(%s) GROUP BY 1 ORDER BY 1
            """,
            (list(services),),
        )
        facts.service_schemas = dict(rows)
    except psycopg2.Error as exc:
        facts.error = str(exc).strip()
    finally:
        conn.close()
    return facts


def read_databases(session: Session, names: list[str]) -> dict[str, tuple]:
    """name -> (owner, login role is a member of the owner, size or None, may create schemas)."""
    rows = session.fetch_all(
        """
        SELECT datname, pg_get_userbyid(datdba), pg_has_role(current_user, datdba, 'MEMBER'),
               CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END,
               has_database_privilege(oid, 'CREATE')
        FROM pg_database WHERE datname = ANY(%s)
        """,
        (names,),
    )
    return {name: rest for name, *rest in rows}


def read_tables(session: Session, schema: str) -> list[dict]:
    rows = session.fetch_all(
        """
        SELECT c.relname::text, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1
        """,
        (schema,),
    )
    # reltuples is -1 (PostgreSQL 14+) or 0 before the first VACUUM/ANALYZE: an estimate, never a count.
    return [{"name": name, "rows": max(int(rows), 0)} for name, rows in rows]


def read_schema(session: Session, schema: str) -> rules.SchemaFacts:
    row = session.fetch_one(
        """
        SELECT pg_get_userbyid(n.nspowner),
               ARRAY(SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = n.oid
                     AND c.relkind NOT IN ('i', 'I', 't', 'c')
                     UNION ALL SELECT p.proname::text FROM pg_proc p WHERE p.pronamespace = n.oid ORDER BY 1)
        FROM pg_namespace n WHERE n.nspname = %s
        """,
        (schema,),
    )
    if row is None:
        return rules.SchemaFacts()
    store = VersionStore(session, schema, GOOSE_TABLE)
    has_goose = store.exists()
    history = store.read() if has_goose else History()
    return rules.SchemaFacts(
        exists=True,
        owner=row[0],
        goose_owner=goose_table_owner(session, schema),
        objects=list(row[1]),
        tables=read_tables(session, schema),
        goose_version=history.current_version if has_goose else None,
        history=history,
    )


def read_legacy(params: ConnectionParams, facts: rules.LegacyFacts) -> None:
    """Tables and goose history of an existing legacy database; a failure is kept as ``error``."""
    try:
        conn = connect(params, facts.database)
    except LamassuError as exc:
        facts.error = str(exc)
        return
    try:
        session = Session(conn, [])
        facts.tables = read_tables(session, SOURCE_SCHEMA)
        facts.stats = source_changes.read(session, SOURCE_SCHEMA)
        facts.goose_owner = goose_table_owner(session, SOURCE_SCHEMA)
        facts.online = online_checks.read_source(session, facts.database, SOURCE_SCHEMA)
        store = VersionStore(session, SOURCE_SCHEMA, GOOSE_TABLE)
        if store.exists():
            facts.history = store.read()
            facts.goose_version = facts.history.current_version
    except psycopg2.Error as exc:
        facts.error = str(exc).strip()
    finally:
        conn.close()


def read_migrations(
    path: str, service: str, history: History, listed: tuple[str, ...] | None = None
) -> rules.MigrationFacts:
    """The pending migrations of ``service`` from ``<path>/<service>``, or from the ``<service>/<file>`` names of
    ``listed`` when the directory is on the controller."""
    if listed is not None:
        directory = ""
        names = [name.split("/", 1)[1] for name in listed if name.startswith(service + "/") and name.count("/") == 1]
        if not names:
            return rules.MigrationFacts()
    else:
        names = None
        try:
            directory = os.path.join(find_root(path), service)  # a checkout root or its migrations folder
        except InvalidInput:
            return rules.MigrationFacts()
        if not os.path.isdir(directory):
            return rules.MigrationFacts()
    try:
        sources = collect(directory, names)
    except InvalidInput as exc:
        return rules.MigrationFacts(found=True, error=str(exc))
    return rules.MigrationFacts(
        found=True, pending=pending_entries(sources, history), current_version=history.current_version or 0
    )


def gather(params: ConnectionParams, request: rules.InfoRequest) -> dict:
    """Every fact, the phases and the problems; raises ConnectionFailed when the server cannot be reached."""
    request.validate()
    maintenance = Session(connect(params, MAINTENANCE_DATABASE), [])
    try:
        server = read_server(maintenance)
        names = [request.legacy_name(s) for s in request.services]
        other_names = [name for name in UNIFIED_DATABASE_NAMES if name != request.database]
        databases = read_databases(maintenance, [*names, request.database, *other_names])
        legacy: dict[str, rules.LegacyFacts] = {}
        for service, name in zip_strict(request.services, names):
            facts = rules.LegacyFacts(database=name)
            if name in databases:
                facts.exists = True
                facts.owner, facts.owned, facts.size_bytes, _create = databases[name]
                facts.frozen = freeze.is_frozen(maintenance, name)
                facts.other_sessions = freeze.other_sessions(maintenance, name)
            legacy[service] = facts
        unified = rules.UnifiedFacts(database=request.database, exists=request.database in databases)
        if unified.exists:
            unified.can_create = bool(databases[request.database][3])
        data_directory = server.data_directory
        replication = online_checks.read_server(maintenance, request.database)
    except psycopg2.Error as exc:
        raise OperationFailed(f"Reading the server facts failed: {str(exc).strip()}") from None
    finally:
        maintenance.close()

    for facts in legacy.values():
        if facts.exists:
            read_legacy(params, facts)
    if unified.exists:
        read_unified(params, request, unified)
    others = [read_other_database(params, name, request.services) for name in other_names if name in databases]

    migrations: dict[str, rules.MigrationFacts] = {}
    phases: dict[str, str] = {}
    for service in request.services:
        schema = unified.schemas.get(service, rules.SchemaFacts())
        counted = schema.history if schema.copy else legacy[service].history
        if request.migrations_path or request.migration_files is not None:
            migrations[service] = read_migrations(
                request.migrations_path or "", service, counted or History(), request.migration_files
            )
        found = migrations.get(service)
        pending = len(found.pending) if found and found.found and not found.error else None
        phases[service] = rules.service_phase(
            legacy[service].exists, schema.copy, schema.goose_version, pending, schema.migration_check
        )
    changes = {
        s: source_changes.compare(unified.schemas[s].recorded_stats, legacy[s].stats)
        for s in request.services
        if s in unified.schemas and unified.schemas[s].copy and legacy[s].stats is not None
    }

    to_copy = sum(legacy[s].size_bytes or 0 for s in request.services if phases[s] == "legacy" and legacy[s].exists)
    disk = measure_disk(params, data_directory, to_copy, request.disk_margin)
    problems, warnings = rules.assess(request, server, legacy, unified, phases, migrations, disk, others)
    to_move = [s for s in request.services if phases[s] == "legacy" and legacy[s].exists]
    sources = {s: legacy[s].online for s in request.services if legacy[s].online is not None}
    online = online_checks.assess(replication, sources, to_move, request.move_mode)
    problems += [online_checks.stale_slot_problem(slot) for slot in replication.slots if slot.stale]
    warnings += online_checks.leftover_publications(replication, sources.values())
    warnings += unified.notices
    warnings += [
        f"legacy database {legacy[s].database!r} changed after its copy into schema {s!r}: "
        f"{source_changes.summary(found)}; cutover and cleanup refuse it until it is copied again "
        "(-e db_to_schema_if_target_exists=replace) or the loss is accepted (-e lamassu_accept_source_changes=true)"
        for s, found in changes.items()
        if found
    ]
    services = {
        s: rules.service_result(
            request, params, s, phases[s], legacy[s], unified.schemas.get(s), migrations.get(s), changes.get(s)
        )
        for s in request.services
    }
    legacy_result = {s: legacy[s].as_dict() for s in request.services}
    cleanup = rules.cleanup_decision(services, legacy_result, request.accept_source_changes)
    for service, blockers in cleanup.pop("services").items():
        services[service]["cleanup_blockers"] = blockers
    return {
        "changed": False,
        "server": server.as_dict(),
        "other_databases": {other.database: other.as_dict() for other in others},
        "disk": disk.as_dict(),
        "legacy": legacy_result,
        "unified": {
            **unified.as_dict(),
            "empty_schemas": rules.empty_schemas(unified.schema_dicts()),
            "recorded_schemas": rules.recorded_schemas(unified.schema_dicts()),
        },
        "services": services,
        "cleanup": cleanup,
        "cutover": {"blockers": rules.cutover_blockers(services, request.accept_source_changes)},
        "phases": {phase: [s for s in request.services if phases[s] == phase] for phase in rules.PHASES},
        "service_roles": {s: services[s]["service_role"] for s in request.services},
        "online": online,
        "replication_slots": [slot.as_dict() for slot in replication.slots],
        "ready": not problems,
        "upgrade_done": rules.upgrade_done(services, problems),
        "problems": problems,
        "notices": warnings,
        "queries": [],
    }


def read_unified(params: ConnectionParams, request: rules.InfoRequest, unified: rules.UnifiedFacts) -> None:
    conn = connect(params, request.database)
    try:
        session = Session(conn, [])
        journal = Journal(session)
        unified.journal = journal.exists()
        for service in request.services:
            schema = read_schema(session, service)
            if unified.journal:
                record = journal.published(request.legacy_name(service), SOURCE_SCHEMA, service)
                schema.copy = rules.copy_summary(record) if record else None
                schema.recorded_stats = record.source_stats if record else None
                schema.freeze_recorded = journal.freeze_record(request.legacy_name(service))[0]
            check, error = read_or_none(session, service)
            schema.migration_check = check.as_dict() if check else None
            if error and not unified.notices:  # one notice: the table is the same for every schema
                unified.notices.append(f"{JOURNAL_SCHEMA}.{CHECKS_TABLE} cannot be read: {error}")
            unified.schemas[service] = schema
        unified.live_moves = [s for s in online_moves.targets(session) if s in request.services]
    except psycopg2.Error as exc:
        raise OperationFailed(f"Reading database {request.database!r} failed: {str(exc).strip()}") from None
    finally:
        conn.close()
