# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prepare the migrations a plan runs and apply them one by one (``command.py`` runs a whole goose command).

Everything that can be refused (malformed file, Go migration without a Python port) is refused by ``prepare``
before the first migration runs. Each transactional migration runs its statements and its version-row change in
one transaction; a ``NO TRANSACTION`` one runs statement by statement and then records its version, as goose does.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .._pg import extensions, psycopg2
from ..errors import InvalidInput, LamassuError, OperationFailed
from ..lamassu import GOOSE_TABLE
from ..names import check_identifier
from ..session import Session
from .parser import parse_sql_file
from .plan import (
    UP,
    Plan,
    Step,
    go_without_port,
)
from .source import MigrationSource
from .store import VersionStore

STATEMENT_PREVIEW = 300


@dataclass(frozen=True)
class MigrateRequest:
    """The module's parameters, validated."""

    database: str
    schema: str
    path: str
    command: str = "up"
    version: int | None = None
    table: str = GOOSE_TABLE
    allow_missing: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    # Run the migrations as the owner of the version table (SET ROLE), as Lamassu's migration Job runs them as the
    # services' role, so that what they create belongs to the service.
    run_as_owner: bool = True

    def validate(self) -> None:
        check_identifier(self.database, "database", allow_system=True)
        check_identifier(self.schema, "schema")
        check_identifier(self.table, "version table")
        if not os.path.isdir(self.path):
            raise InvalidInput(f"migrations directory {self.path!r} does not exist or is not a directory")


@dataclass(frozen=True)
class PreparedStep:
    """A step with what it will execute: SQL statements or a Python function."""

    step: Step
    statements: tuple[str, ...] = ()
    use_tx: bool = True
    function: Callable | None = None

    @property
    def source(self) -> MigrationSource:
        return self.step.source

    @property
    def file(self) -> str:
        return os.path.basename(self.source.path)


class StepFailed(Exception):
    """One migration failed; what was applied before it stays applied.

    ``failed`` names it as goose's ``PartialError.Failed`` does: version, file name, direction and the statement
    that failed (None when a Python migration or the version table update failed).
    """

    def __init__(self, message: str, failed: dict):
        super().__init__(message)
        self.failed = failed


def migration_env(extra: Mapping[str, object]) -> dict[str, str]:
    return {**os.environ, **{str(k): "" if v is None else str(v) for k, v in extra.items()}}


def _load_python(source: MigrationSource):
    module_name = f"lamassu_goose_migration_{source.version}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, source.path)
        if spec is None or spec.loader is None:
            raise ImportError("not a loadable Python file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:
        raise InvalidInput(f"{source.path}: cannot load the Python migration: {type(exc).__name__}: {exc}") from None
    if not callable(getattr(module, "up", None)):
        raise InvalidInput(f"{source.path}: a Python migration must define a function up(conn)")
    down = getattr(module, "down", None)
    if down is not None and not callable(down):
        raise InvalidInput(f"{source.path}: down must be a function down(conn)")
    return module


def prepare(plan: Plan, env: Mapping[str, str]) -> list[PreparedStep]:
    """Parse or load every file the plan runs; any error here is raised before anything is applied."""
    gone_go = go_without_port(plan.steps)
    if gone_go:
        listed = ", ".join(f"{m.version} ({os.path.basename(m.path)})" for m in gone_go)
        raise InvalidInput(
            f"Go migrations cannot be run by this module and have no Python port: {listed}. Nothing was applied. "
            "Port each one to a Python migration <version>_<name>.py in the same directory (functions up(conn) "
            "and optionally down(conn), run inside the migration's transaction), or apply it with the Go binary."
        )
    parsed: dict[str, object] = {}
    prepared = []
    for step in plan.steps:
        source = step.source
        if source.path not in parsed:
            if source.kind == "sql":
                parsed[source.path] = parse_sql_file(source.path, env)
            else:
                parsed[source.path] = _load_python(source)
        loaded = parsed[source.path]
        if source.kind == "sql":
            statements = loaded.up if step.direction == UP else loaded.down
            prepared.append(PreparedStep(step, tuple(statements), loaded.use_tx))
        else:
            function = getattr(loaded, step.direction, None)
            prepared.append(PreparedStep(step, (), True, function))
    return prepared


def _recording_cursor(record: list[str]):
    """A cursor class that keeps the text of every statement a Python migration executes."""

    class RecordingCursor(extensions.cursor):
        def execute(self, query, vars=None):
            result = super().execute(query, vars)
            record.append(self.query.decode(extensions.encodings.get(self.connection.encoding, "utf-8"), "replace"))
            return result

        def executemany(self, query, vars_list):
            result = super().executemany(query, vars_list)
            record.append(self.query.decode(extensions.encodings.get(self.connection.encoding, "utf-8"), "replace"))
            return result

    return RecordingCursor


class Runner:
    """Applies prepared steps on one connection, recording every statement in ``queries``."""

    def __init__(self, session: Session, store: VersionStore):
        self.session = session
        self.store = store
        self.conn = session.conn

    def version_change(self, prepared: PreparedStep) -> tuple:
        if prepared.step.direction == UP:
            return self.store.insert_statement(prepared.source.version)
        return self.store.delete_statement(prepared.source.version)

    def _fail(self, prepared: PreparedStep, where: str, exc: BaseException, statement: str = "") -> StepFailed:
        message = getattr(getattr(exc, "diag", None), "message_primary", None) or str(exc).strip()
        text = f"Migration {prepared.source.version} ({prepared.source.path}) failed {prepared.step.direction}"
        text += f" at {where}: {message}"
        if statement:
            preview = statement.strip()
            if len(preview) > STATEMENT_PREVIEW:
                preview = preview[:STATEMENT_PREVIEW] + " ..."
            text += f"; statement: {preview}"
        if prepared.use_tx:
            text += ". This migration was rolled back; the migrations applied before it are kept."
        else:
            text += (
                ". It is a NO TRANSACTION migration: the statements before the failing one stay applied and "
                "the version was not recorded."
            )
        failed = {
            "version": prepared.source.version,
            "name": prepared.file,
            "direction": prepared.step.direction,
            "statement": statement.strip() or None,
            "error": message,
        }
        return StepFailed(text, failed)

    def run(self, prepared: PreparedStep) -> list[str]:
        """Run one migration and its version-row change; return the statements it executed."""
        version_query, version_params = self.version_change(prepared)
        executed: list[str] = []
        self.conn.autocommit = not prepared.use_tx
        try:
            if prepared.source.kind == "sql":
                total = len(prepared.statements)
                with self.conn.cursor() as cur:
                    for number, statement in enumerate(prepared.statements, start=1):
                        try:
                            cur.execute(statement)
                        except psycopg2.Error as exc:
                            raise self._fail(prepared, f"statement {number} of {total}", exc, statement) from None
                        executed.append(statement)
                        self.session.queries.append(statement)
            elif prepared.function is not None:
                recorded: list[str] = []
                self.conn.cursor_factory = _recording_cursor(recorded)
                try:
                    prepared.function(self.conn)
                except Exception as exc:
                    raise self._fail(prepared, f"{prepared.step.direction}(conn)", exc) from None
                finally:
                    self.conn.cursor_factory = None
                    executed.extend(recorded)
                    self.session.queries.extend(recorded)
            try:
                self.session.execute(version_query, version_params, what="goose version table")
            except OperationFailed as exc:
                raise self._fail(prepared, "the version table update", exc) from None
            if prepared.use_tx:
                self.conn.commit()
        except StepFailed:
            if prepared.use_tx and not self.conn.closed:  # a terminated backend leaves nothing to roll back
                self.conn.rollback()
            raise
        finally:
            if not self.conn.closed:
                self.conn.autocommit = True
        return executed

    def create_version_table(self) -> None:
        self.conn.autocommit = False
        try:
            for query, params in self.store.create_statements():
                self.session.execute(
                    query, params, what=f"create the goose version table of schema {self.store.schema}"
                )
            self.conn.commit()
        except LamassuError:
            self.conn.rollback()
            raise
        finally:
            self.conn.autocommit = True
