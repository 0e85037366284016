"""Bad input through Ansible: every case fails with a message naming the object and the cause, and changes nothing.

Each case runs a module of the collection through ``ansible-playbook`` against databases made for that case
alone (copies of two templates: a legacy ``ca`` database and a unified database with a migrated schema ``svc``
and an occupied schema ``occupied``). Before and after, the catalog and data checksums of those databases and
the cluster's databases and roles are snapshotted (``tests/harness/snapshot.py``); they must be equal.

To stay fast, the cases of one group run as the tasks of one playbook (each task registered, failures
included); each case still has its own databases, its own snapshots and its own test.

The last tests are the counterparts: hostile names PostgreSQL can store are quoted, never executed; ``up-to``
a version without a file behaves as goose's Provider (no error).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pytest
from psycopg2 import sql

from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.store import GOOSE_POSTGRES_DDL
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import JOURNAL_SCHEMA
from tests.harness.ansible import run_module, run_tasks
from tests.harness.fixture import build_legacy
from tests.harness.snapshot import cluster_state, database_state, server_state, state_differences

MODULES = {
    "schema": "lamassuiot.postgres.postgres_lamassu_schema",
    "migrate": "lamassuiot.postgres.postgres_lamassu_migrate",
    "copy": "lamassuiot.postgres.postgres_db_to_schema",
}
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"

# Roles for the authentication and privilege cases (the harness's pg_hba wants scram for them on 127.0.0.1).
WEAK_ROLE = "bi_weak"  # LOGIN, a password, no CREATEDB, no CREATE on any database, no USAGE on schema svc
WEAK_PASSWORD = "bi-weak-Pa55"
NOLOGIN_ROLE = "bi_nologin"  # NOLOGIN, but with a password: the refusal is the missing LOGIN
HOSTILE = '"; DROP SCHEMA occupied CASCADE; --'

ITEMS_MIGRATION = (
    "-- +goose Up\nCREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\n-- +goose Down\nDROP TABLE items;\n"
)
OK_MIGRATION = "-- +goose Up\nCREATE TABLE added (id int);\n-- +goose Down\nDROP TABLE added;\n"

UNIFIED_TEMPLATE_SQL = (
    "CREATE SCHEMA svc",
    GOOSE_POSTGRES_DDL.format(table="svc.goose_db_version"),
    "INSERT INTO svc.goose_db_version (version_id, is_applied) VALUES (0, true), (1, true)",
    "CREATE TABLE svc.items (id serial PRIMARY KEY, name text NOT NULL)",
    "INSERT INTO svc.items (name) SELECT 'item ' || g FROM generate_series(1, 50) g",
    "CREATE SCHEMA occupied",
    "CREATE TABLE occupied.readings (id bigint PRIMARY KEY, value numeric NOT NULL, note text)",
    "INSERT INTO occupied.readings SELECT g, g * 1.5, md5(g::text) FROM generate_series(1, 200) g",
    "CREATE VIEW occupied.latest AS SELECT * FROM occupied.readings ORDER BY id DESC LIMIT 10",
)


@dataclass(frozen=True)
class Case:
    """One bad input: module, arguments, what the message must contain, and the databases it gets.

    Placeholders in ``args``, ``expect`` and ``setup_sql``: ``{target}`` (a copy of the unified template),
    ``{src}`` (a copy of the legacy ``ca`` template), ``{path}`` (a migrations directory holding
    ``00001_items.sql`` unless ``base_files`` is false, plus ``files``), ``{missing}`` (a database name that
    does not exist).
    """

    id: str
    group: str
    module: str
    args: dict
    expect: tuple[str, ...]
    databases: tuple[str, ...] = ("target",)
    files: dict[str, str] = field(default_factory=dict)
    base_files: bool = True
    setup_sql: tuple[str, ...] = ()
    isolated: bool = True  # False: refused before connecting; shares the group's databases


def mig(**args) -> dict:
    return {"database": "{target}", "schema": "svc", "path": "{path}", **args}


def copy(**args) -> dict:
    return {"source_database": "{src}", "target_database": "{target}", **args}


WEAK = {"login_user": WEAK_ROLE, "login_password": WEAK_PASSWORD}
WRONG_PASSWORD = {"login_user": WEAK_ROLE, "login_password": "not-the-password"}
SSL_REQUIRED = {"ssl_mode": "require"}
AUTH_FAILED = ("authentication failed", WEAK_ROLE)
NO_SSL = ("SSL", "server does not support SSL")
BOTH = ("target", "src")

# Malformed files goose rejects (the whole list is in tests/unit/goose/test_parser.py): a representative few,
# each placed after a valid pending migration that must not be applied either.
MALFORMED = {
    "no-up-annotation": ("CREATE TABLE bad (id int);\n", "00003_bad.sql:1", "must start with '-- +goose Up'"),
    "statement-begin-without-end": (
        "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE bad (id int);\n",
        "00003_bad.sql:2",
        "missing '-- +goose StatementEnd'",
    ),
    "end-without-begin": (
        "-- +goose Up\nSELECT 1;\n-- +goose StatementEnd\n",
        "00003_bad.sql:3",
        "without a matching",
    ),
    "unknown-annotation": ("-- +goose Up\n-- +goose Sideways\nSELECT 1;\n", "00003_bad.sql:2", "unknown annotation"),
    "duplicate-up": (
        "-- +goose Up\nSELECT 1;\n-- +goose Up\nSELECT 2;\n",
        "00003_bad.sql:3",
        "duplicate '-- +goose Up'",
    ),
    "unfinished-statement": ("-- +goose Up\nCREATE TABLE bad (id int)\n", "00003_bad.sql:2", "unfinished SQL"),
    "envsub-required-variable": (
        "-- +goose Up\n-- +goose ENVSUB ON\nCREATE TABLE ${BI_UNSET_TABLE?set BI_UNSET_TABLE} (id int);\n",
        "00003_bad.sql:3",
        "variable substitution failed: $BI_UNSET_TABLE",
    ),
    "not-utf8": ("-- +goose Up\nSELECT '\udcff';\n", "00003_bad.sql:2", "not valid UTF-8"),
}

CASES: list[Case] = [
    # ------------------------------------------------------------------ postgres_lamassu_schema
    Case("schema-database-64-bytes", "schema", "schema", {"database": "l" * 64}, ("database name", "64 bytes")),
    Case("schema-database-unicode-64-bytes", "schema", "schema", {"database": "ü" * 32}, ("database", "64 bytes")),
    Case("schema-database-pg-prefix", "schema", "schema", {"database": "pg_lamassu"}, ("'pg_lamassu'", "pg_")),
    Case(
        "schema-schemas-pg-prefix",
        "schema",
        "schema",
        {"database": "{target}", "schemas": ["ca", "pg_ca"]},
        ("schema name 'pg_ca'", "reserves"),
    ),
    Case("schema-schemas-empty-name", "schema", "schema", {"database": "{target}", "schemas": ["ca", ""]}, ("empty",)),
    Case("schema-schemas-nul", "schema", "schema", {"database": "{target}", "schemas": ["ca\x00x"]}, ("NUL",)),
    Case(
        "schema-schemas-twice",
        "schema",
        "schema",
        {"database": "{target}", "schemas": ["kms", "kms"]},
        ("names a schema twice", "kms"),
    ),
    Case(
        "schema-owner-hostile",
        "schema",
        "schema",
        {"database": "{target}", "schemas": ["ca"], "owner": "app" + HOSTILE},
        ("owner role", "does not exist", "DROP SCHEMA occupied"),
    ),
    Case(
        "schema-owner-65-bytes",
        "schema",
        "schema",
        {"database": "{target}", "owner": "o" * 65},
        ("owner role name", "65 bytes"),
    ),
    Case(
        "schema-truncated-without-force",
        "schema",
        "schema",
        {"database": "{target}", "schemas": ["occupied"], "state": "truncated"},
        ("truncated", "force=true"),
    ),
    Case(
        "schema-truncated-missing-database-hostile",
        "schema",
        "schema",
        {"database": "{missing}" + HOSTILE, "state": "truncated", "force": True},
        ("Cannot truncate", "does not exist", "{missing}"),
    ),
    Case(
        "schema-absent-non-empty-without-cascade",
        "schema",
        "schema",
        {"database": "{target}", "schemas": ["occupied"], "state": "absent"},
        ("non-empty", "occupied", "readings", "nothing was dropped"),
    ),
    Case("schema-state-unknown", "schema", "schema", {"database": "{target}", "state": "gone"}, ("state", "gone")),
    Case(
        "schema-cascade-not-bool",
        "schema",
        "schema",
        {"database": "{target}", "state": "absent", "schemas": ["occupied"], "cascade": "maybe"},
        ("cascade", "bool"),
    ),
    Case(
        "schema-unknown-option",
        "schema",
        "schema",
        {"database": "{target}", "drop_everything": True},
        ("Unsupported parameters", "drop_everything"),
    ),
    # ------------------------------------------------------------------ postgres_lamassu_migrate: parameters
    Case("migrate-database-70-bytes", "migrate", "migrate", mig(database="d" * 70), ("database name", "70 bytes")),
    Case(
        "migrate-database-hostile",
        "migrate",
        "migrate",
        mig(database="{target}" + HOSTILE),
        ("does not exist", "DROP SCHEMA occupied"),
    ),
    Case("migrate-database-missing", "migrate", "migrate", mig(database="{missing}"), ("{missing}", "does not exist")),
    Case("migrate-schema-pg-catalog", "migrate", "migrate", mig(schema="pg_catalog"), ("'pg_catalog'", "pg_")),
    Case("migrate-schema-unicode-66-bytes", "migrate", "migrate", mig(schema="€" * 22), ("schema name", "66 bytes")),
    Case("migrate-table-pg-prefix", "migrate", "migrate", mig(table="pg_goose"), ("version table", "'pg_goose'")),
    Case(
        "migrate-table-dollar-quotes-66-bytes",
        "migrate",
        "migrate",
        mig(table="$$;--" * 13 + "x"),
        ("version table", "66 bytes"),
    ),
    Case("migrate-command-unknown", "migrate", "migrate", mig(command="sideways"), ("command", "sideways")),
    Case("migrate-up-to-without-version", "migrate", "migrate", mig(command="up-to"), ("up-to", "version")),
    Case(
        "migrate-up-to-negative-version",
        "migrate",
        "migrate",
        mig(command="up-to", version=-5),
        ("up-to", "at least 1", "-5"),
    ),
    Case(
        "migrate-down-to-negative-version",
        "migrate",
        "migrate",
        mig(command="down-to", version=-1),
        ("down-to", "at least 0", "-1"),
    ),
    Case("migrate-version-not-int", "migrate", "migrate", mig(version="latest"), ("version", "int")),
    Case("migrate-env-not-dict", "migrate", "migrate", mig(env=[1, 2]), ("env", "dict")),
    Case(
        "migrate-path-missing", "migrate", "migrate", mig(path="{path}/nowhere"), ("{path}/nowhere", "does not exist")
    ),
    Case(
        "migrate-path-is-a-file",
        "migrate",
        "migrate",
        mig(path="{path}/00001_items.sql"),
        ("00001_items.sql", "not a directory"),
    ),
    Case(
        "migrate-path-without-migrations",
        "migrate",
        "migrate",
        mig(),
        ("no migration files", "{path}"),
        base_files=False,
        files={"README.md": "not a migration\n"},
    ),
    Case(
        "migrate-down-applied-version-without-file",
        "migrate",
        "migrate",
        mig(command="down"),
        ("version 1", "no file", "nothing was rolled back"),
        base_files=False,
        files={"00002_other.sql": OK_MIGRATION},
    ),
    # ------------------------------------------------------------------ postgres_lamassu_migrate: files
    *[
        Case(
            f"migrate-file-{name}",
            "migrate-files",
            "migrate",
            mig(),
            (where, cause),
            files={"00002_ok.sql": OK_MIGRATION, "00003_bad.sql": text},
        )
        for name, (text, where, cause) in MALFORMED.items()
    ],
    Case(
        "migrate-duplicate-versions",
        "migrate-files",
        "migrate",
        mig(),
        ("duplicate migration version 2", "00002_a.sql", "00002_b.sql"),
        files={"00002_a.sql": OK_MIGRATION, "00002_b.sql": OK_MIGRATION},
    ),
    Case(
        "migrate-version-zero-file",
        "migrate-files",
        "migrate",
        mig(),
        ("00000_zero.sql", "greater than zero"),
        files={"00000_zero.sql": OK_MIGRATION},
    ),
    Case(
        "migrate-unported-go",
        "migrate-files",
        "migrate",
        mig(),
        ("Go migrations", "00003_rewrite.go", "Nothing was applied"),
        files={"00002_ok.sql": OK_MIGRATION, "00003_rewrite.go": "package migrations\n"},
    ),
    Case(
        "migrate-python-syntax-error",
        "migrate-files",
        "migrate",
        mig(),
        ("00003_port.py", "cannot load the Python migration", "SyntaxError"),
        files={"00002_ok.sql": OK_MIGRATION, "00003_port.py": "def up(conn)\n    pass\n"},
    ),
    Case(
        "migrate-python-without-up",
        "migrate-files",
        "migrate",
        mig(),
        ("00003_port.py", "up(conn)"),
        files={"00002_ok.sql": OK_MIGRATION, "00003_port.py": "def down(conn):\n    pass\n"},
    ),
    Case(
        "migrate-missing-out-of-order",
        "migrate-files",
        "migrate",
        mig(),
        ("found 1 missing (out-of-order) migration", "[2]", "allow_missing"),
        files={"00002_late.sql": OK_MIGRATION, "00003_newer.sql": OK_MIGRATION.replace("added", "newer")},
        setup_sql=("INSERT INTO svc.goose_db_version (version_id, is_applied) VALUES (3, true)",),
    ),
    # ------------------------------------------------------------------ postgres_db_to_schema
    Case(
        "copy-source-missing",
        "copy",
        "copy",
        copy(source_database="{missing}"),
        ("source database '{missing}' does not exist",),
    ),
    Case(
        "copy-source-hostile",
        "copy",
        "copy",
        copy(source_database="{src}" + HOSTILE, target_schema="ca"),
        ("source database", "does not exist", "DROP SCHEMA occupied"),
        databases=BOTH,
    ),
    Case(
        "copy-source-64-bytes",
        "copy",
        "copy",
        copy(source_database="s" * 64, target_schema="ca"),
        ("source database name", "64 bytes"),
        databases=BOTH,
    ),
    Case(
        "copy-target-database-missing",
        "copy",
        "copy",
        copy(target_database="{missing}"),
        ("target database '{missing}' does not exist",),
        databases=("src",),
    ),
    Case(
        "copy-source-is-target",
        "copy",
        "copy",
        copy(target_database="{src}", target_schema="copy"),
        ("source and target database are both", "{src}"),
        databases=("src",),
    ),
    Case(
        "copy-target-schema-pg-prefix",
        "copy",
        "copy",
        copy(target_schema="pg_ca"),
        ("target schema name 'pg_ca'", "pg_"),
        databases=BOTH,
    ),
    Case(
        "copy-target-schema-staging-name",
        "copy",
        "copy",
        copy(target_schema="lamassu_stage_ca"),
        ("'lamassu_stage_ca'", "reserved"),
        databases=BOTH,
    ),
    Case(
        "copy-target-schema-journal",
        "copy",
        "copy",
        copy(target_schema=JOURNAL_SCHEMA),
        (f"'{JOURNAL_SCHEMA}'", "reserved"),
        databases=BOTH,
    ),
    Case(
        "copy-target-schema-unicode-66-bytes",
        "copy",
        "copy",
        copy(target_schema="☃" * 22),
        ("target schema name", "66 bytes"),
        databases=BOTH,
    ),
    Case("copy-jobs-zero", "copy", "copy", copy(jobs=0), ("jobs", "at least 1", "0"), databases=BOTH),
    Case("copy-jobs-negative", "copy", "copy", copy(jobs=-3), ("jobs", "at least 1", "-3"), databases=BOTH),
    Case("copy-jobs-not-int", "copy", "copy", copy(jobs="many"), ("jobs", "int"), databases=BOTH),
    Case("copy-verify-unknown", "copy", "copy", copy(verify="sha256"), ("verify", "sha256"), databases=BOTH),
    Case(
        "copy-drop-source-unverified",
        "copy",
        "copy",
        copy(verify="none", drop_source=True),
        ("drop_source", "verif"),
        databases=BOTH,
    ),
    Case(
        "copy-target-occupied",
        "copy",
        "copy",
        copy(target_schema="occupied"),
        ("target schema 'occupied'", "already holds objects", "readings", "Nothing was changed"),
        databases=BOTH,
    ),
    Case(
        "copy-source-schema-missing-hostile",
        "copy",
        "copy",
        copy(source_schema="nope" + HOSTILE),
        ("source schema", "does not exist", "DROP SCHEMA occupied"),
        databases=BOTH,
    ),
    Case(
        "copy-absent-not-a-recorded-copy",
        "copy",
        "copy",
        copy(target_schema="occupied", state="absent"),
        ("Refusing to remove schema 'occupied'", "no copy", "Nothing was changed"),
        databases=BOTH,
    ),
    # ------------------------------------------------------------------ connections and privileges
    Case(
        "schema-wrong-password",
        "auth",
        "schema",
        {"database": "{target}", "schemas": ["ca"], **WRONG_PASSWORD},
        AUTH_FAILED,
    ),
    Case("migrate-wrong-password", "auth", "migrate", mig(**WRONG_PASSWORD), AUTH_FAILED),
    Case("copy-wrong-password", "auth", "copy", copy(**WRONG_PASSWORD), AUTH_FAILED, databases=BOTH),
    Case("schema-ssl-required", "auth", "schema", {"database": "{target}", "schemas": ["ca"], **SSL_REQUIRED}, NO_SSL),
    Case("migrate-ssl-required", "auth", "migrate", mig(**SSL_REQUIRED), NO_SSL),
    Case("copy-ssl-required", "auth", "copy", copy(**SSL_REQUIRED), NO_SSL, databases=BOTH),
    Case(
        "schema-unreachable-port",
        "auth",
        "schema",
        {"database": "{target}", "login_port": 1},
        ("Cannot connect", "127.0.0.1:1", "unreachable"),
    ),
    Case(
        "schema-nologin-role",
        "auth",
        "schema",
        {"database": "{target}", "login_user": NOLOGIN_ROLE, "login_password": WEAK_PASSWORD},
        (NOLOGIN_ROLE, "not permitted to log in"),
    ),
    Case(
        "migrate-nologin-role",
        "auth",
        "migrate",
        mig(login_user=NOLOGIN_ROLE, login_password=WEAK_PASSWORD),
        (NOLOGIN_ROLE, "not permitted to log in"),
    ),
    Case(
        "schema-without-createdb",
        "auth",
        "schema",
        {"database": "{missing}", "schemas": ["ca"], **WEAK},
        ("{missing}", "permission denied to create database"),
    ),
    Case(
        "schema-drop-not-owner",
        "auth",
        "schema",
        {"database": "{target}", "schemas": ["occupied"], "state": "absent", "cascade": True, **WEAK},
        ("occupied", "must be owner of schema"),
    ),
    Case(
        "migrate-without-create-on-database",
        "auth",
        "migrate",
        mig(schema="svc2", **WEAK),
        ("svc2", "permission denied for database"),
    ),
    Case(
        "migrate-without-usage-on-schema",
        "auth",
        "migrate",
        mig(**WEAK),
        ("svc", "permission denied for schema svc"),
    ),
    Case(
        "copy-without-create-on-database",
        "auth",
        "copy",
        copy(**WEAK),
        ("phase plan", "permission denied"),
        databases=BOTH,
    ),
]

# Refused before any connection: these share their group's databases (which must stay unchanged all the same).
REFUSED_BEFORE_CONNECTING = {
    "schema-database-64-bytes",
    "schema-database-unicode-64-bytes",
    "schema-database-pg-prefix",
    "schema-schemas-pg-prefix",
    "schema-schemas-empty-name",
    "schema-schemas-nul",
    "schema-schemas-twice",
    "schema-owner-65-bytes",
    "schema-truncated-without-force",
    "schema-state-unknown",
    "schema-cascade-not-bool",
    "schema-unknown-option",
    "migrate-database-70-bytes",
    "migrate-schema-pg-catalog",
    "migrate-schema-unicode-66-bytes",
    "migrate-table-pg-prefix",
    "migrate-table-dollar-quotes-66-bytes",
    "migrate-command-unknown",
    "migrate-up-to-without-version",
    "migrate-version-not-int",
    "migrate-env-not-dict",
    "migrate-path-missing",
    "migrate-path-is-a-file",
    "copy-source-64-bytes",
    "copy-source-is-target",
    "copy-target-schema-pg-prefix",
    "copy-target-schema-staging-name",
    "copy-target-schema-journal",
    "copy-target-schema-unicode-66-bytes",
    "copy-jobs-zero",
    "copy-jobs-negative",
    "copy-jobs-not-int",
    "copy-verify-unknown",
    "copy-drop-source-unverified",
}
CASES = [replace(case, isolated=case.id not in REFUSED_BEFORE_CONNECTING) for case in CASES]


def _substitute(value, names: dict[str, str]):
    if isinstance(value, str):
        for key, replacement in names.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, list):
        return [_substitute(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, names) for k, v in value.items()}
    return value


def _strings(value) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    return set()


@dataclass
class Outcome:
    result: dict
    expect: list[str]
    differences: list[str]


class Corpus:
    """Runs the cases of a group on first demand (one playbook per group) and keeps every case's outcome.

    Under pytest-xdist the outcomes of a group are shared between the workers through a file (under a lock),
    so each group runs once per test run, whichever worker asks first.
    """

    def __init__(self, cluster, root: Path, shared: Path | None):
        self.cluster = cluster
        self.root = root
        self.shared = shared
        self.outcomes: dict[str, Outcome] = {}
        self.created: list[str] = []
        self._templates: dict[str, str] = {}

    @property
    def templates(self) -> dict[str, str]:
        """The two template databases, built on first use (a worker reading shared outcomes needs none)."""
        if not self._templates:
            _ensure_roles(self.cluster)
            token = uuid.uuid4().hex[:6]
            legacy_prefix = f"bi_tmpl_{token}_"
            self.created.append(legacy_prefix + "ca")
            build_legacy(self.cluster, scale=0.0001, services=("ca",), prefix=legacy_prefix)
            unified = f"bi_tmpl_{token}_unified"
            self.created.append(unified)
            self.cluster.execute("postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(unified)))
            self.cluster.execute(unified, *UNIFIED_TEMPLATE_SQL)
            self._templates = {"src": legacy_prefix + "ca", "target": unified}
        return self._templates

    def outcome(self, case: Case) -> Outcome:
        if case.id not in self.outcomes:
            self._load_or_run(case.group)
        return self.outcomes[case.id]

    def _load_or_run(self, group: str) -> None:
        if self.shared is None:
            self.outcomes.update(self._run_group(group))
            return
        self.shared.mkdir(parents=True, exist_ok=True)
        stored = self.shared / f"{group}.json"
        with open(self.shared / f"{group}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not stored.exists():
                outcomes = self._run_group(group)
                stored.write_text(json.dumps({cid: asdict(o) for cid, o in outcomes.items()}))
        self.outcomes.update({cid: Outcome(**o) for cid, o in json.loads(stored.read_text()).items()})

    def create_database(self, template_role: str) -> str:
        name = f"bi_{uuid.uuid4().hex[:8]}_{'ca' if template_role == 'src' else 'tg'}"
        self.cluster.execute(
            "postgres",
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(self.templates[template_role])
            ),
        )
        self.created.append(name)
        return name

    def _prepare(self, case: Case, group_databases: dict[str, str]) -> tuple[dict, dict[str, str], list[str]]:
        names = {"missing": f"bi_{uuid.uuid4().hex[:8]}_missing"}
        for role in case.databases:
            if case.isolated:
                names[role] = self.create_database(role)
            else:
                if role not in group_databases:
                    group_databases[role] = self.create_database(role)
                names[role] = group_databases[role]
        path = self.root / case.id
        path.mkdir(parents=True)
        if case.base_files:
            (path / "00001_items.sql").write_text(ITEMS_MIGRATION)
        for filename, text in case.files.items():
            (path / filename).write_bytes(text.encode("utf-8", "surrogateescape"))
        names["path"] = str(path)
        for statement in case.setup_sql:
            self.cluster.execute(names["target"], _substitute(statement, names))
        return _substitute(case.args, names), names, _substitute(list(case.expect), names)

    def _run_group(self, group: str) -> dict[str, Outcome]:
        cases = [case for case in CASES if case.group == group]
        group_databases: dict[str, str] = {}
        prepared = {case.id: self._prepare(case, group_databases) for case in cases}
        databases = {case.id: [prepared[case.id][1][role] for role in case.databases] for case in cases}
        # Every name a case mentions is watched: a database or role made from it would show up.
        watched = set(self.created) | {WEAK_ROLE, NOLOGIN_ROLE}
        for args, names, _expect in prepared.values():
            watched |= _strings(args) | set(names.values())
        every_database = sorted({db for dbs in databases.values() for db in dbs})
        cluster_before = cluster_state(self.cluster, watched)
        before = {db: database_state(self.cluster, db) for db in every_database}
        run = run_tasks([{MODULES[case.module]: prepared[case.id][0]} for case in cases], self.cluster)
        after = {db: database_state(self.cluster, db) for db in every_database}
        cluster_differences = [
            f"cluster: {line}" for line in state_differences(cluster_before, cluster_state(self.cluster, watched))
        ]
        outcomes = {}
        for case, result in zip(cases, run.results, strict=True):
            differences = [
                f"{db}: {line}" for db in databases[case.id] for line in state_differences(before[db], after[db])
            ]
            outcomes[case.id] = Outcome(result, prepared[case.id][2], differences + cluster_differences)
        return outcomes

    def drop_created(self) -> None:
        for name in self.created:
            with contextlib.suppress(Exception):
                self.cluster.execute(
                    "postgres", sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def _ensure_roles(cluster) -> None:
    for role, login in ((WEAK_ROLE, "LOGIN"), (NOLOGIN_ROLE, "NOLOGIN")):
        cluster.execute(
            "postgres",
            sql.SQL(
                "DO $$BEGIN CREATE ROLE {role} {login} NOSUPERUSER NOCREATEDB PASSWORD {password};"
                " EXCEPTION WHEN duplicate_object THEN NULL; END$$"
            ).format(role=sql.Identifier(role), login=sql.SQL(login), password=sql.Literal(WEAK_PASSWORD)),
        )


@pytest.fixture(scope="session")
def corpus(pg, tmp_path_factory):
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    shared = tmp_path_factory.getbasetemp().parent / f"bad-input-{run_id}" if run_id else None
    corpus = Corpus(pg, tmp_path_factory.mktemp("bad-input"), shared)
    yield corpus
    corpus.drop_created()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_and_changes_nothing(corpus, case):
    outcome = corpus.outcome(case)
    result = outcome.result
    assert result.get("failed") is True, f"{case.id}: the module did not fail: {result}"
    message = result.get("msg", "")
    missing = [part for part in outcome.expect if part not in message]
    assert not missing, f"{case.id}: message lacks {missing}: {message!r}"
    assert "Traceback" not in message and "MODULE FAILURE" not in message, message
    assert not result.get("changed"), result
    assert WEAK_PASSWORD not in str(result)
    assert not outcome.differences, f"{case.id} changed the server:\n" + "\n".join(outcome.differences[:30])


# ---------------------------------------------------------------------- the counterparts: accepted, not refused

HOSTILE_SCHEMAS = ['ca"; DROP SCHEMA occupied CASCADE; --', "kms$$ -- $$;", "ünïcödé ☃", "Mixed Case"]


def test_hostile_schema_names_are_quoted_not_executed(pg, corpus):
    """Names PostgreSQL stores exactly are created exactly, and nothing else happens."""
    target = corpus.create_database("target")
    before = server_state(pg, [target])
    created = run_module("postgres_lamassu_schema", {"database": target, "schemas": HOSTILE_SCHEMAS}, pg).result
    assert created.get("changed") is True, created
    assert [(s["name"], s["state"]) for s in created["schemas"]] == [(name, "created") for name in HOSTILE_SCHEMAS]
    after = server_state(pg, [target])
    differences = state_differences(before, after)
    assert differences and all(
        line.startswith("databases.") and ".schemas." in line and "only in after" in line for line in differences
    ), differences
    assert sorted(after["databases"][target]["schemas"]) == sorted(
        [*before["databases"][target]["schemas"], *HOSTILE_SCHEMAS]
    )
    removed = run_module(
        "postgres_lamassu_schema", {"database": target, "schemas": HOSTILE_SCHEMAS, "state": "absent"}, pg
    ).result
    assert [s["state"] for s in removed["schemas"]] == ["dropped"] * len(HOSTILE_SCHEMAS), removed
    assert state_differences(before, server_state(pg, [target])) == []


def test_hostile_migrate_schema_and_table_names_are_quoted(pg, corpus, tmp_path):
    target = corpus.create_database("target")
    (tmp_path / "00001_items.sql").write_text(ITEMS_MIGRATION)
    schema, table = 'svc"; DROP SCHEMA svc CASCADE; --', 'goose "versions" $$'
    result = run_module(
        "postgres_lamassu_migrate", {"database": target, "schema": schema, "table": table, "path": str(tmp_path)}, pg
    ).result
    assert result.get("changed") is True and result["version_after"] == 1, result
    rows = pg.query(
        target,
        sql.SQL("SELECT version_id FROM {} ORDER BY id").format(sql.Identifier(schema, table)),
    )
    assert rows == [(0,), (1,)]
    tables = pg.query(target, "SELECT schemaname, tablename FROM pg_tables WHERE schemaname LIKE 'svc%' ORDER BY 1, 2")
    assert tables == [("svc", "goose_db_version"), ("svc", "items"), (schema, table), (schema, "items")]


def test_up_to_a_version_without_a_file_follows_goose(pg, corpus, tmp_path):
    """goose's Provider.UpTo applies every pending version <= the target; a target without a file is no error.

    (provider.go ``UpTo`` -> ``up``: only ``version < 1`` is refused; ``resolveUpMigrations`` keeps the
    migrations with ``dbMaxVersion < m.Version <= version``.)
    """
    target = corpus.create_database("target")
    (tmp_path / "00001_items.sql").write_text(ITEMS_MIGRATION)
    for version in (3, 5):
        (tmp_path / f"0000{version}_t{version}.sql").write_text(OK_MIGRATION.replace("added", f"t{version}"))
    common = {"database": target, "schema": "svc", "path": str(tmp_path), "command": "up-to"}
    run = run_tasks(
        [
            {MODULES["migrate"]: {**common, "version": 4}},
            {MODULES["migrate"]: {**common, "version": 2}},
            {MODULES["migrate"]: {**common, "version": 99999999999999}},
        ],
        pg,
    )
    between, below_current, beyond_newest = run.results
    assert [a["version"] for a in between["applied"]] == [3] and between["version_after"] == 3, between
    assert below_current.get("failed") is not True and below_current["changed"] is False, below_current
    assert [a["version"] for a in beyond_newest["applied"]] == [5] and beyond_newest["version_after"] == 5
    assert pg.query(target, "SELECT version_id FROM svc.goose_db_version ORDER BY id") == [(0,), (1,), (3,), (5,)]
