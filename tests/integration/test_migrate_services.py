"""postgres_lamassu_migrate's ``services`` form and its action's ``src`` (the controller's files sent as one archive),
through Ansible against a real PostgreSQL: one run for several schemas, every file checked before any schema
changes, the first failure stops the run, and the results name the controller's files."""

from __future__ import annotations

import shutil
import tarfile
import uuid
from pathlib import Path

from tests.harness.ansible import run_module
from tests.harness.fixture import schema_versions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"
SERVICES = ("ca", "kms", "va")


def fresh_db(pg) -> str:
    db = f"msvc_{uuid.uuid4().hex[:10]}"
    pg.execute("postgres", f'CREATE DATABASE "{db}"')
    return db


def versions(pg, db: str, schemas=SERVICES) -> dict:
    return schema_versions(pg, db, schemas)


def tree(tmp_path: Path, services=SERVICES) -> Path:
    root = tmp_path / "engines" / "storage" / "postgres" / "migrations"
    for service in services:
        shutil.copytree(FIXTURES / service, root / service)
    (root / "helpers").mkdir()
    return root


def test_src_migrates_every_service_in_one_run_and_names_the_controller_files(pg, tmp_path):
    db = fresh_db(pg)
    root = tree(tmp_path)
    # A checkout root works as src: its engines/storage/postgres/migrations folder is used.
    args = {"database": db, "services": list(SERVICES), "src": str(tmp_path)}

    check = run_module("postgres_lamassu_migrate", args, pg, check=True).result
    assert check["changed"] and not check.get("failed"), check
    assert [r["schema"] for r in check["results"]] == list(SERVICES)
    assert versions(pg, db) == {}

    first = run_module("postgres_lamassu_migrate", args, pg, diff=True).result
    assert first["changed"] and not first.get("failed"), first
    assert [r["schema"] for r in first["results"]] == list(SERVICES)
    expected = {s: max(int(f.name.split("_")[0]) for f in (root / s).iterdir()) for s in SERVICES}
    assert versions(pg, db) == expected
    assert {r["schema"]: r["version_after"] for r in first["results"]} == expected
    assert first["path"] == str(root)
    paths = [m["path"] for r in first["results"] for m in r["migrations"]]
    assert paths and all(p.startswith(f"{root}/") for p in paths), paths
    assert first["diff"]["after"]["versions"] == expected
    assert first["queries"] == [q for r in first["results"] for q in r["queries"]]

    again = run_module("postgres_lamassu_migrate", args, pg).result
    assert not again["changed"] and not again.get("failed"), again
    assert all(r["applied"] == [] and r["pending"] == [] for r in again["results"])


def test_a_refused_file_in_the_last_service_changes_no_schema(pg, tmp_path):
    db = fresh_db(pg)
    root = tree(tmp_path)
    (root / "va" / "99999999999999_broken.sql").write_text("-- no goose annotation at all\nSELECT 1;\n")

    run = run_module("postgres_lamassu_migrate", {"database": db, "services": list(SERVICES), "src": str(root)}, pg)
    result = run.result
    assert result.get("failed"), result
    assert result["msg"].startswith("va: "), result["msg"]
    assert "99999999999999_broken.sql:2" in result["msg"] and "lamassu-migrations-" not in result["msg"], result["msg"]
    assert [r["schema"] for r in result["results"]] == ["va"]
    assert versions(pg, db) == {}, "a schema changed although a file of another was refused"


def test_the_first_failure_stops_the_run_and_keeps_what_ran_before(pg, tmp_path):
    db = fresh_db(pg)
    root = tree(tmp_path)
    (root / "kms" / "99999999999999_fails.sql").write_text(
        "-- +goose Up\nINSERT INTO no_such_table VALUES (1);\n-- +goose Down\nSELECT 1;\n"
    )

    result = run_module(
        "postgres_lamassu_migrate", {"database": db, "services": list(SERVICES), "path": str(root)}, pg
    ).result
    assert result.get("failed"), result
    assert [r["schema"] for r in result["results"]] == ["ca", "kms"]
    ca, kms = result["results"]
    assert not ca.get("failed") and ca["applied"], ca
    assert kms["failed"] and kms["failed_migration"]["version"] == 99999999999999, kms
    assert kms["applied"], "the kms migrations before the failing one are listed"
    done = versions(pg, db)
    assert "ca" in done and "va" not in done, done
    assert done["kms"] < 99999999999999


def test_single_schema_from_an_archive_path_and_from_src(pg, tmp_path):
    db = fresh_db(pg)
    archive = tmp_path / "kms.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted((FIXTURES / "kms").iterdir()):
            tar.add(path, arcname=path.name)

    from_archive = run_module("postgres_lamassu_migrate", {"database": db, "schema": "kms", "path": str(archive)}, pg)
    assert from_archive.result["changed"] and not from_archive.result.get("failed"), from_archive.result
    assert "results" not in from_archive.result and from_archive.result["version_after"] == versions(pg, db)["kms"]
    assert not Path(from_archive.result["path"]).exists(), "the unpacked archive was left behind"

    from_src = run_module(
        "postgres_lamassu_migrate", {"database": db, "schema": "kms", "src": str(FIXTURES / "kms")}, pg
    )
    assert not from_src.result["changed"] and not from_src.result.get("failed"), from_src.result
    assert all(m["path"].startswith(f"{FIXTURES / 'kms'}/") for m in from_src.result["migrations"])


def test_bad_forms_are_refused_before_anything_changes(pg, tmp_path):
    db = fresh_db(pg)
    both = run_module(
        "postgres_lamassu_migrate", {"database": db, "schema": "ca", "services": ["ca"], "path": "/x"}, pg
    )
    assert both.result.get("failed") and "mutually exclusive" in both.result["msg"], both.result
    none = run_module("postgres_lamassu_migrate", {"database": db, "schema": "ca"}, pg)
    assert none.result.get("failed") and "path" in none.result["msg"] and "src" in none.result["msg"], none.result
    gone = run_module("postgres_lamassu_migrate", {"database": db, "services": ["ca"], "src": str(tmp_path / "no")}, pg)
    assert gone.result.get("failed") and "does not exist" in gone.result["msg"], gone.result
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escaped.sql")
        tar.addfile(info)
    refused = run_module("postgres_lamassu_migrate", {"database": db, "schema": "ca", "path": str(evil)}, pg)
    assert refused.result.get("failed") and "not a plain file or directory inside" in refused.result["msg"]
    assert not (tmp_path / "escaped.sql").exists()
    assert versions(pg, db, ["ca"]) == {}
