"""Role schema_migrate: every service directory migrated into its schema; a second run changes nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.harness.ansible import recap_changed, run_local_play
from tests.harness.fixture import schema_versions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"
NEWEST = {
    "alerts": 1,
    "ca": 20260520120000,
    "devicemanager": 20260120114736,
    "dmsmanager": 20260604110000,
    "kms": 20251031174938,
    "va": 1,
}


def play(tmp_path: Path, pg, role_vars: dict, check: bool = False):
    """The role as the upgrade playbook uses it: inventory-style variables at play level, role variables on the role.

    Temporary files go to ``tmp_path/tmp`` (TMPDIR), away from the plays other test workers run at the same time.
    """
    inventory = {k: v for k, v in role_vars.items() if k.startswith("lamassu_")}
    params = {k: v for k, v in role_vars.items() if not k.startswith("lamassu_")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return run_local_play(
        tmp_path,
        pg,
        {"vars": inventory, "roles": [{"role": "lamassuiot.postgres.schema_migrate", **params}]},
        *(["--check"] if check else []),
        env={"TMPDIR": str(tmp_path / "tmp")},
    )


def versions(pg, db: str) -> dict[str, int]:
    return schema_versions(pg, db, NEWEST)


def test_role_migrates_every_service_and_is_idempotent(pg, tmp_path):
    db = f"role_{uuid.uuid4().hex[:10]}"
    pg.execute("postgres", f'CREATE DATABASE "{db}"')
    role_vars = {"lamassu_migrations_dir": str(FIXTURES), "schema_migrate_database": db}

    check = play(tmp_path, pg, role_vars, check=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert recap_changed(check.stdout) == 1  # one looped task would change
    assert versions(pg, db) == {}

    first = play(tmp_path, pg, role_vars)
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap_changed(first.stdout) == 1
    assert versions(pg, db) == NEWEST

    second = play(tmp_path, pg, role_vars)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap_changed(second.stdout) == 0

    assert not list((tmp_path / "tmp").glob("lamassu-migrations-*")), "temporary copies left behind"


def test_role_refuses_a_missing_directory(pg, tmp_path):
    run = play(tmp_path, pg, {"schema_migrate_dir": str(tmp_path / "nowhere")})
    assert run.returncode != 0
    assert "nowhere does not exist: give a Lamassu checkout" in run.stdout
