"""goose's own SQL parser cases, read from goose's module in the Go module cache (never copied here).

``internal/sqlparser/testdata`` of the pinned goose: every ``valid-up`` and ``envsub`` input must split into
exactly its golden statements (``NN.up.golden.sql`` / ``NN.down.golden.sql``), every ``invalid/up`` file must
be refused, and the ``valid-txn`` files must agree on the transaction flag, in our parser and through the
module's check mode. goose's ``testdata/migrations`` tree, applied by goose's CLI and by the module to two
schemas, must give the same objects and rows.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.parser import parse_sql
from tests.harness.ansible import run_tasks
from tests.harness.catalog import describe_schema, diff_descriptions
from tests.harness.gopeers import load_peers, module_dir

MIGRATE = "lamassuiot.postgres.postgres_lamassu_migrate"
SQLPARSER = module_dir(load_peers()["goose"]) / "internal" / "sqlparser" / "testdata"
# goose's TestEnvsub sets these before parsing the envsub cases.
GOOSE_TEST_ENV = {"GOOSE_ENV_REGION": "us_east_", "GOOSE_ENV_SET_BUT_EMPTY_VALUE": "", "GOOSE_ENV_NAME": "foo"}
# goose's TestUseTransactions.
USE_TX = {"00001_create_users_table.sql": True, "00002_rename_root.sql": True, "00003_no_transaction.sql": False}


def cases(kind: str) -> list[str]:
    """Names of goose's cases of one kind. Without goose's module (no Go, or not built yet) one placeholder,
    which the ``testdata`` fixture skips with the reason the build failed."""
    directory = SQLPARSER / kind
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else ["goose-not-built"]


def golden(case_dir: Path, direction: str) -> list[str]:
    files = sorted(case_dir.glob(f"*.{direction}.golden.sql"), key=lambda p: int(p.name.split(".")[0]))
    return [p.read_text() for p in files]


def valid_cases() -> list[tuple[str, str]]:
    return [("valid-up", name) for name in cases("valid-up")] + [("envsub", name) for name in cases("envsub")]


@pytest.fixture(scope="module")
def testdata(goose_source) -> Path:
    """goose's parser test data, once goose is built (the skip names the failed build otherwise)."""
    assert SQLPARSER.is_dir(), f"goose's module source has no {SQLPARSER}"
    return SQLPARSER


@pytest.mark.parametrize(("kind", "name"), valid_cases())
def test_statements_match_goose_golden_files(testdata, kind, name):
    case = testdata / kind / name
    env = GOOSE_TEST_ENV if kind == "envsub" else {}
    parsed = parse_sql((case / "input.sql").read_text(), env=env, source=f"{kind}/{name}")
    assert list(parsed.up) == golden(case, "up")
    if kind == "envsub":  # goose checks the Down pass of these only
        assert list(parsed.down) == golden(case, "down")


@pytest.mark.parametrize("name", cases("invalid/up"))
def test_invalid_cases_are_refused(testdata, name):
    with pytest.raises(InvalidInput):
        parse_sql((testdata / "invalid" / "up" / name).read_text(), source=name)


@pytest.mark.parametrize("name", cases("valid-txn"))
def test_transaction_flag_matches_goose(testdata, name):
    assert parse_sql((testdata / "valid-txn" / name).read_text()).use_tx is USE_TX[name]


def test_check_mode_plans_goose_statements_for_every_case(pg, db, testdata, tmp_path):
    """The module, through Ansible, plans the golden statements (one task per case, one playbook)."""
    tasks, expected = [], []
    for kind, name in valid_cases():
        tree = tmp_path / kind / name
        tree.mkdir(parents=True)
        shutil.copy(testdata / kind / name / "input.sql", tree / "00001_input.sql")
        env = GOOSE_TEST_ENV if kind == "envsub" else {}
        tasks.append({MIGRATE: {"database": db, "schema": "parity", "path": str(tree), "env": env}})
        expected.append(("ok", golden(testdata / kind / name, "up")))
    for name in cases("invalid/up"):
        tree = tmp_path / "invalid" / name
        tree.mkdir(parents=True)
        shutil.copy(testdata / "invalid" / "up" / name, tree / "00001_input.sql")
        tasks.append({MIGRATE: {"database": db, "schema": "parity", "path": str(tree)}})
        expected.append(("failed", "00001_input.sql:"))
    results = run_tasks(tasks, pg, check=True).results
    for task, result, (outcome, want) in zip(tasks, results, expected, strict=True):
        where = task[MIGRATE]["path"]
        if outcome == "ok":
            assert not result.get("failed"), (where, result)
            assert result["applied"][0]["statements"] == want, where
        else:
            assert result.get("failed") and want in result["msg"], (where, result)
            assert result["changed"] is False and result["queries"] == [], where
    assert pg.query(db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'parity'") == [(0,)]


def test_goose_own_migrations_tree_applied_by_both(pg, db, goose_cli, goose_source, tmp_path):
    tree = tmp_path / "migrations"
    shutil.copytree(goose_source / "testdata" / "migrations", tree)
    pg.execute(db, "CREATE SCHEMA by_goose")
    goose = goose_cli(db, "by_goose", tree)
    goose.run("up")
    result = run_tasks([{MIGRATE: {"database": db, "schema": "by_module", "path": str(tree)}}], pg).result
    assert not result.get("failed"), result
    assert goose.version() == result["version_after"] == max(int(p.name[:5]) for p in tree.glob("*.sql"))
    with contextlib.closing(pg.connect(db)) as conn:
        structure = describe_schema(conn, "by_goose"), describe_schema(conn, "by_module")
    assert not diff_descriptions(*structure, ("goose", "module"))
    # the same rows, but for the created_at columns (DEFAULT CURRENT_TIMESTAMP) and the version tables
    for table in ("users", "posts", "comments"):
        by_goose, by_module = (
            pg.query(db, f"SELECT to_jsonb(t) - 'created_at' FROM {schema}.{table} t ORDER BY 1")
            for schema in ("by_goose", "by_module")
        )
        assert by_goose == by_module and len(by_goose) == 3, table
