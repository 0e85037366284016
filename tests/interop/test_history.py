"""The version table is shared with goose's CLI: each reads exactly what the other applied.

After every command of the module, ``goose status`` / ``goose version`` on the same schema (``-table`` and
``search_path=`` in the DSN) show the module's applied set and version; after goose's commands the module
finds goose's history, pending list and schema.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.harness.ansible import run_tasks
from tests.harness.catalog import describe_schema, diff_descriptions

MIGRATE = "lamassuiot.postgres.postgres_lamassu_migrate"
ENV = {"LAMASSU_DOMAIN": "pki.example.com", "LAMASSU_REGION": "us_east_"}

PLAIN = {
    "00010_devices.sql": "-- +goose Up\nCREATE TABLE devices (id text PRIMARY KEY, status text);\n"
    "-- +goose Down\nDROP TABLE devices;\n",
    "00020_groups.sql": "-- +goose Up\nCREATE TABLE groups (id int PRIMARY KEY, name text NOT NULL);\n"
    "INSERT INTO groups VALUES (1, 'default');\n-- +goose Down\nDROP TABLE groups;\n",
    "00030_device_group.sql": "-- +goose Up\nALTER TABLE devices ADD COLUMN group_id int REFERENCES groups (id);\n"
    "-- +goose Down\nALTER TABLE devices DROP COLUMN group_id;\n",
    "00040_status_index.sql": "-- +goose Up\nCREATE INDEX devices_status ON devices (status);\n"
    "-- +goose Down\nDROP INDEX devices_status;\n",
}
PLAIN_MISSING = {
    "00025_group_names.sql": "-- +goose Up\nUPDATE groups SET name = upper(name);\n"
    "-- +goose Down\nUPDATE groups SET name = lower(name);\n"
}

ANNOTATED = {
    "00010_settings.sql": """-- +goose Up
CREATE TABLE settings (k text PRIMARY KEY, v text);
-- +goose StatementBegin
CREATE FUNCTION settings_default() RETURNS trigger AS $$
BEGIN
    NEW.v := coalesce(NEW.v, 'unset'); -- a semicolon inside the body;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER settings_default BEFORE INSERT ON settings FOR EACH ROW EXECUTE FUNCTION settings_default();

-- +goose Down
DROP TABLE settings;
DROP FUNCTION settings_default();
""",
    "00020_envsub.sql": """-- +goose ENVSUB ON
-- +goose Up
INSERT INTO settings VALUES ('domain', '${LAMASSU_DOMAIN}'), ('region', '${LAMASSU_REGION:-eu}'),
    ('unset', NULL), ('default', '${LAMASSU_NOT_SET:-fallback}');
-- +goose Down
DELETE FROM settings;
""",
    "00030_concurrent_index.sql": """-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY settings_v ON settings (v);
CREATE INDEX CONCURRENTLY settings_kv ON settings (k, v);

-- +goose Down
DROP INDEX CONCURRENTLY settings_kv;
DROP INDEX CONCURRENTLY settings_v;
""",
    "00040_note.sql": "-- +goose Up\nALTER TABLE settings ADD COLUMN note text;\n"
    "-- +goose Down\nALTER TABLE settings DROP COLUMN note;\n",
}
ANNOTATED_MISSING = {
    "00025_late_setting.sql": """-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    INSERT INTO settings (k, v) VALUES ('late', 'x');
END
$$;
-- +goose StatementEnd
-- +goose Down
DELETE FROM settings WHERE k = 'late';
"""
}

TREES = {"sql-only": (PLAIN, PLAIN_MISSING), "annotated": (ANNOTATED, ANNOTATED_MISSING)}


def write_tree(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def ours(pg, database: str, schema: str, path: Path, *steps: dict) -> list[dict]:
    """Run each step of the module, then its ``status``; returns the step results and the status last."""
    common = {"database": database, "schema": schema, "path": str(path), "env": ENV}
    tasks = [{MIGRATE: {**common, **step}} for step in steps] + [{MIGRATE: {**common, "command": "status"}}]
    results = run_tasks(tasks, pg).results
    for result in results:
        assert not result.get("failed"), result
    return results


def our_view(status: dict) -> tuple[list[str], list[str], int]:
    applied = [m["name"] for m in status["migrations"] if m["state"] == "applied"]
    pending = [m["name"] for m in status["migrations"] if m["state"] in ("pending", "missing")]
    return applied, pending, status["version_after"]


def goose_view(goose) -> tuple[list[str], list[str], int]:
    status = goose.status()
    return status.applied, status.pending, goose.version()


@pytest.mark.parametrize("tree", TREES)
def test_goose_reads_the_history_the_module_writes(pg, db, tmp_path, goose_cli, tree):
    files, missing = TREES[tree]
    path = write_tree(tmp_path / tree, files)
    goose = goose_cli(db, "svc", path)
    steps = [
        ({"command": "up-to", "version": 20}, ["00010", "00020"]),
        ({"command": "up"}, ["00010", "00020", "00030", "00040"]),
        ({"command": "down"}, ["00010", "00020", "00030"]),
        ({"command": "redo"}, ["00010", "00020", "00030"]),
    ]
    for step, expected in steps:
        status = ours(pg, db, "svc", path, step)[-1]
        view = our_view(status)
        assert [name[:5] for name in view[0]] == expected, (step, view)
        assert goose_view(goose) == view, step

    write_tree(path, missing)
    up, status = ours(pg, db, "svc", path, {"command": "up", "allow_missing": True})
    assert [a["name"][:5] for a in up["applied"]] == ["00025", "00040"]
    view = our_view(status)
    assert view == ([*sorted([*files, *missing])], [], 40)
    assert goose_view(goose) == view


@pytest.mark.parametrize("tree", TREES)
def test_the_module_reads_the_history_goose_writes(pg, db, tmp_path, goose_cli, tree):
    files, missing = TREES[tree]
    path = write_tree(tmp_path / tree, files)
    pg.execute(db, "CREATE SCHEMA by_goose")
    goose = goose_cli(db, "by_goose", path)

    goose.run("up-to", "20", env=ENV)
    status = ours(pg, db, "by_goose", path)[-1]
    assert our_view(status) == goose_view(goose)
    assert [p["name"] for p in status["pending"]] == goose.status().pending == sorted(files)[2:]

    planned = run_tasks(
        [{MIGRATE: {"database": db, "schema": "by_goose", "path": str(path), "env": ENV}}], pg, check=True
    )
    assert [a["name"] for a in planned.result["applied"]] == goose.status().pending

    goose.run("up", env=ENV)
    up, status = ours(pg, db, "by_goose", path, {"command": "up"})
    assert up["changed"] is False and up["applied"] == [] and up["pending"] == [], up
    assert our_view(status) == (sorted(files), [], 40) == goose_view(goose)

    # goose's -allow-missing and the module's allow_missing read the same missing file
    write_tree(path, missing)
    status = ours(pg, db, "by_goose", path)[-1]
    assert our_view(status)[1] == goose.status().pending == sorted(missing)
    goose.run("up", flags=("-allow-missing",), env=ENV)
    up, status = ours(pg, db, "by_goose", path, {"command": "up"})
    assert up["changed"] is False
    applied, pending, version = our_view(status)
    assert (applied, pending) == goose_view(goose)[:2] == (sorted([*files, *missing]), [])
    # goose's CLI (its older API) takes the last inserted row (25) as the version; the module, like goose's
    # Provider, the highest applied (40), and says so (documented in the module's notes)
    assert (version, goose.version()) == (40, 25)
    assert any("older API" in warning and "25" in warning for warning in status["warnings"]), status

    # the same tree applied by the module to another schema gives the same objects and rows
    ours(pg, db, "by_module", path, {"command": "up", "allow_missing": True})
    with contextlib.closing(pg.connect(db)) as conn:
        by_goose, by_module = describe_schema(conn, "by_goose"), describe_schema(conn, "by_module")
    assert not diff_descriptions(by_goose, by_module, ("goose", "module"))
    table = "settings" if tree == "annotated" else "groups"
    rows = f"SELECT * FROM {{}}.{table} ORDER BY 1"
    assert pg.query(db, rows.format("by_goose")) == pg.query(db, rows.format("by_module"))
