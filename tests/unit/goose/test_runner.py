"""Preparing a plan (no database): every file of the plan is parsed or loaded before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.plan import plan_command
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.runner import MigrateRequest, prepare
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.source import collect
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.store import History

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "migrations"


def write(directory: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (directory / name).write_text(text)
    return str(directory)


def test_fixture_plan_prepares_statements_and_python_functions():
    plan = plan_command("up", collect(str(FIXTURES / "ca")), History())
    prepared = prepare(plan, {})
    assert [(p.source.kind, len(p.statements), p.use_tx) for p in prepared] == [
        ("sql", 1, True),
        ("py", 0, True),
        ("sql", 3, True),
        ("sql", 2, True),
        ("py", 0, True),
        ("sql", 3, True),
    ]
    assert callable(prepared[1].function) and prepared[1].function.__name__ == "up"
    assert "regexp_replace(subject_common_name, E'\\\\\\\\', '/', 'g')" in prepared[2].statements[2]


def test_no_transaction_fixture():
    plan = plan_command("up", collect(str(FIXTURES / "devicemanager")), History())
    assert [p.use_tx for p in prepare(plan, {})] == [True, True, True, True, False]


def test_envsub_takes_the_given_environment(tmp_path):
    path = write(tmp_path, {"1_a.sql": "-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${X}';\n"})
    prepared = prepare(plan_command("up", collect(path), History()), {"X": "ok"})
    assert prepared[0].statements == ("SELECT 'ok';",)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_a.sql": "SELECT 1;\n"}, "1_a.sql:"),
        (
            {"1_a.sql": "-- +goose Up\nSELECT 1;\n", "2_b.go": "package m\n", "3_c.go": "package m\n"},
            "2 (2_b.go), 3 (3_c.go)",
        ),
        ({"1_a.go": "package m\n"}, "<version>_<name>.py"),
        ({"1_a.py": "def up(conn)\n"}, "1_a.py: cannot load the Python migration: SyntaxError"),
        ({"1_a.py": "def down(conn):\n    pass\n"}, "must define a function up(conn)"),
        ({"1_a.py": "up = 1\n"}, "must define a function up(conn)"),
    ],
)
def test_refused_before_anything_runs(tmp_path, files, message):
    path = write(tmp_path, files)
    with pytest.raises(InvalidInput) as failure:
        prepare(plan_command("up", collect(path), History()), {})
    assert message in str(failure.value)


def test_request_validation(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        MigrateRequest("lamassu", "ca", str(tmp_path / "nowhere")).validate()
    with pytest.raises(InvalidInput, match="schema name is empty"):
        MigrateRequest("lamassu", "", str(tmp_path)).validate()
    with pytest.raises(InvalidInput, match="would truncate"):
        MigrateRequest("lamassu", "ca", str(tmp_path), table="t" * 64).validate()
