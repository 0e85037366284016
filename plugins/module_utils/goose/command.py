# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A goose command on one schema or on several schemas of one database: lock, read each history, plan and prepare
every file of every schema, then apply, schema after schema; and the module's parameters turned into that run.

Everything that can be refused (unknown command, malformed file, Go migration without a Python port, missing
migrations) is refused, for every schema, before the first migration of any schema runs. The first failure stops
the run; what each schema before it did is returned with the error (``service_results.failed_among``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .._pg import extensions, psycopg2, sql
from ..connection import ConnectionParams, connect
from ..errors import InvalidInput, LamassuError, OperationFailed
from ..lamassu import JOURNAL_SCHEMA
from ..migration_checks import CHECKS_TABLE, MigrationCheck, MigrationChecks, digest_of_paths
from ..service_results import combined, failed_among
from ..session import Session
from .archive import unpacked, unpacked_data
from .lock import MigrationLock
from .plan import (
    READ_ONLY_COMMANDS,
    Plan,
    history_after,
    older_api_disagreement,
    pending_entries,
    plan_command,
    status_entries,
)
from .runner import MigrateRequest, PreparedStep, Runner, StepFailed, migration_env, prepare
from .source import MigrationSource, collect
from .store import History, VersionStore


def _applied_entry(prepared: PreparedStep, statements: list[str] | tuple[str, ...], duration_ms: int) -> dict:
    return {
        "version": prepared.source.version,
        "name": prepared.source.name,
        "kind": prepared.source.kind,
        "direction": prepared.step.direction,
        "statements": list(statements),
        "duration_ms": duration_ms,
    }


def _check_mode_statements(prepared: PreparedStep) -> list[str]:
    if prepared.source.kind == "sql":
        return list(prepared.statements)
    if prepared.function is None:
        return []
    return [f"-- {prepared.step.direction}(conn) of {prepared.file}: Python, its statements are known when it runs"]


def _report(migrations: list[MigrationSource], before: History, after: History, applied, queries) -> dict:
    return {
        "changed": bool(applied),
        "version_before": before.current_version,
        "version_after": after.current_version,
        "applied": applied,
        "pending": pending_entries(migrations, after),
        "migrations": status_entries(migrations, after),
        "queries": queries,
    }


@dataclass
class _Planned:
    """One schema's run, planned and prepared: every file it runs is read before any schema is changed."""

    request: MigrateRequest
    session: Session
    store: VersionStore
    migrations: list[MigrationSource]
    before: History
    table_exists: bool
    plan: Plan
    prepared: list[PreparedStep]
    run_as: str | None = None  # the role the migrations run as (SET ROLE); None: the login role


def _plan(conn, request: MigrateRequest) -> _Planned:
    migrations = collect(request.path)
    if not migrations:
        raise InvalidInput(f"no migration files (<version>_<name>.sql|.py|.go) in {request.path}")
    session = Session(conn, [])
    store = VersionStore(session, request.schema, request.table)
    before = store.read()
    table_exists = bool(before.rows) or store.exists()
    try:
        plan = plan_command(request.command, migrations, before, request.version, request.allow_missing)
        prepared = prepare(plan, migration_env(request.env))
    except InvalidInput as exc:
        # refused before anything ran: still say where the schema stands
        exc.result.update(_report(migrations, before, before, [], session.queries))
        raise
    run_as = store.owner_to_take() if request.run_as_owner and table_exists and plan.steps else None
    return _Planned(request, session, store, migrations, before, table_exists, plan, prepared, run_as)


def _run(planned: _Planned, check_mode: bool, warn: Callable[[str], None]) -> dict:
    session, store, migrations, before = planned.session, planned.store, planned.migrations, planned.before
    queries = session.queries
    if planned.request.command in READ_ONLY_COMMANDS:
        for message in _status_warnings(migrations, before):
            warn(message)
        return _report(migrations, before, before, [], queries)
    # The session of the migrations: their schema first on the search path, and the role they run as.
    setup = [sql.SQL("SET search_path TO {}").format(sql.Identifier(planned.request.schema))]
    if planned.run_as:
        setup.append(sql.SQL("SET ROLE {}").format(sql.Identifier(planned.run_as)))
    if check_mode:
        if planned.plan.steps:
            if not planned.table_exists:
                queries.extend(session.render(q, p) for q, p in store.create_statements())
            queries.extend(session.render(statement) for statement in setup)
        applied = []
        runner = Runner(session, store)
        for item in planned.prepared:
            statements = _check_mode_statements(item)
            queries.extend(statements)
            query, params = runner.version_change(item)
            queries.append(session.render(query, params))
            applied.append(_applied_entry(item, statements, 0))
        return _report(migrations, before, planned.plan.after, applied, queries)
    try:
        return _apply(session, store, migrations, before, planned.plan, planned.prepared, planned.table_exists, setup)
    finally:
        if planned.run_as and not session.conn.closed:
            _reset_role(session.conn)


def migrate_schemas(conn, requests: list[MigrateRequest], check_mode: bool, warn: Callable[[str], None]) -> list[dict]:
    """One command on several schemas of one database (requests validated by ``run_migrate``), under one lock, on
    an open autocommit connection.

    Every schema is read and every file it runs is prepared before the first migration of any schema runs, so a
    refused file changes nothing anywhere. Then the schemas run in order; the first failure stops the run, its
    ``LamassuError`` carrying in ``results`` what each schema before it did and its own partial result.
    """
    read_only = requests[0].command in READ_ONLY_COMMANDS
    lock = None if (check_mode or read_only) else MigrationLock(Session(conn, []), requests[0].database)
    if lock is not None:
        lock.acquire()
    results: list[dict] = []
    try:
        planned = []
        for request in requests:
            try:
                planned.append(_plan(conn, request))
            except LamassuError as exc:
                raise failed_among(exc, request.schema, results) from None
        for item in planned:
            try:
                result = _run(item, check_mode, warn)
            except LamassuError as exc:
                raise failed_among(exc, item.request.schema, results) from None
            _record_check(item, result, check_mode, warn)
            results.append({"schema": item.request.schema, **result})
        return results
    finally:
        if lock is not None and not conn.closed:
            if conn.get_transaction_status() != extensions.TRANSACTION_STATUS_IDLE:
                conn.rollback()
            lock.release()


# The commands after which a schema with nothing pending is recorded as checked against its tree.
RECORDING_COMMANDS = frozenset({"up", "up-by-one", "up-to", "redo"})


def _tree_files(migrations: list[MigrationSource]) -> list[str]:
    return [m.path for m in migrations] + [m.go_path for m in migrations if m.go_path]


def _record_check(planned: _Planned, result: dict, check_mode: bool, warn: Callable[[str], None]) -> None:
    """Record in the database's journal schema that the schema was migrated against this tree and left nothing
    pending (``migration_checks``), so that info without the tree knows it is at its target. Adds
    ``migration_check`` to ``result``; a record written (or, in check mode, that would be) counts as a change.
    A role that may not write the record gets a warning: the migration itself is done."""
    result["migration_check"] = None
    if planned.request.command not in RECORDING_COMMANDS or result["pending"]:
        return
    session, schema = planned.session, planned.request.schema
    check = MigrationCheck(
        schema=schema,
        tree_digest=digest_of_paths(_tree_files(planned.migrations)),
        newest_version=max(m.version for m in planned.migrations),
        goose_version=result["version_after"],
    )
    checks = MigrationChecks(session)
    listed = len(session.queries)
    try:
        statements = checks.plan(check)
        if statements and not check_mode:
            checks.apply(statements)
    except (OperationFailed, psycopg2.Error) as exc:
        del session.queries[listed:]  # rolled back
        warn(
            f"schema {schema!r} has nothing pending, but recording it in {JOURNAL_SCHEMA}.{CHECKS_TABLE} failed "
            f"(a status read without the migrations tree may call it copied): {str(exc).strip()}"
        )
        return
    if statements is None:
        return
    if check_mode:
        session.queries.extend(session.render(query, params) for query, params in statements)
    result["changed"] = result["changed"] or bool(statements)
    recorded = {key: value for key, value in check.as_dict().items() if key != "checked_at"}
    result["migration_check"] = {**recorded, "written": bool(statements)}


def _reset_role(conn) -> None:
    """Back to the login role (the record of the run and the next schema are the login role's), after a failed
    migration's transaction too."""
    if conn.get_transaction_status() != extensions.TRANSACTION_STATUS_IDLE:
        conn.rollback()
    with conn.cursor() as cur:
        cur.execute("RESET ROLE")


def _single_result(result: dict) -> dict:
    """The result of one schema's run as the single-schema form returns it."""
    return {key: value for key, value in result.items() if key not in ("schema", "failed", "msg")}


def _single_error(exc: LamassuError) -> LamassuError:
    """A failure as the single form reports it: the schema's own partial result, its message unprefixed."""
    if not exc.result.get("results"):
        return exc
    failed = exc.result["results"][-1]
    return type(exc)(failed["msg"], _single_result(failed))


def _apply(session, store, migrations, before, plan, prepared, table_exists, setup) -> dict:
    queries = session.queries
    if not plan.steps:
        return _report(migrations, before, before, [], queries)
    runner = Runner(session, store)
    if not table_exists:
        runner.create_version_table()
    for statement in setup:
        session.execute(statement, what="session of the migrations")
    applied: list[dict] = []
    for item in prepared:
        started = time.monotonic()
        try:
            executed = runner.run(item)
        except StepFailed as exc:
            # The connection may be gone (backend terminated): then the history is what the applied steps made.
            done = [p.step for p in prepared[: len(applied)]]
            after = history_after(before, done) if session.conn.closed else store.read()
            partial = {**_report(migrations, before, after, applied, queries), "failed_migration": exc.failed}
            raise OperationFailed(str(exc), partial) from None
        applied.append(_applied_entry(item, executed, round((time.monotonic() - started) * 1000)))
    return _report(migrations, before, store.read(), applied, queries)


def _status_warnings(migrations: list[MigrationSource], history: History) -> list[str]:
    warnings = []
    disagreement = older_api_disagreement(history)
    if disagreement:
        warnings.append(disagreement)
    gone = [e["version"] for e in status_entries(migrations, history) if e["state"] == "gone"]
    if gone:
        warnings.append(f"applied versions without a file in the migrations directory: {', '.join(map(str, gone))}")
    return warnings


def run_migrate(
    params: ConnectionParams, requests: list[MigrateRequest], check_mode: bool, warn: Callable[[str], None]
) -> list[dict]:
    """Check the requests (one database), connect, migrate each schema, close."""
    # Before connecting: the server silently truncates a database name beyond 63 bytes, which could connect
    # to another database than the one named.
    for request in requests:
        request.validate()
    conn = connect(params, requests[0].database)
    try:
        return migrate_schemas(conn, requests, check_mode, warn)
    finally:
        conn.close()


def _requests(module_params: Mapping, path: str) -> list[MigrateRequest]:
    services = module_params.get("services")
    schemas = services if services is not None else [module_params["schema"]]
    if not schemas:
        raise InvalidInput("services is empty: name at least one schema to migrate")
    return [
        MigrateRequest(
            database=module_params["database"],
            schema=schema,
            path=os.path.join(path, schema) if services is not None else path,
            command=module_params["command"],
            version=module_params["version"],
            table=module_params["table"],
            allow_missing=module_params["allow_missing"],
            env=module_params["env"] or {},
            run_as_owner=module_params.get("run_as_owner", True),
        )
        for schema in schemas
    ]


def _diff(results: list[dict], several: bool) -> dict:
    def versions(key: str) -> dict:
        if several:
            return {"versions": {r["schema"]: r[key] for r in results}}
        return {"version": results[0][key]}

    return {"before": versions("version_before"), "after": versions("version_after")}


def run_module_params(
    params: ConnectionParams, module_params: Mapping, check_mode: bool, diff: bool, warn: Callable[[str], None]
) -> dict:
    """The module's one call: one schema (the single form's returns) or ``services`` (``results`` per schema)."""
    if module_params.get("src"):
        raise InvalidInput("src is read on the controller by the action plugin of this module; give path here")
    several = module_params.get("services") is not None
    encoded = module_params.get("archive")
    with unpacked_data(encoded) if encoded else unpacked(module_params["path"]) as path:
        requests = _requests(module_params, path)
        try:
            results = run_migrate(params, requests, check_mode, warn)
        except LamassuError as exc:
            error = exc if several else _single_error(exc)
            error.result["path"] = path
            raise error from None
    result = combined(results) if several else _single_result(results[0])
    result["path"] = path
    if diff:
        result["diff"] = _diff(results, several)
    return result
