"""Role cutover: the configuration file as it was before the first cutover is kept, also across a stopped run."""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness.ansible import recap_changed, run_local_play

ORIGINAL = "storage:\n  hand_written: true\n"


def play(tmp_path: Path, pg, config: Path, tasks_from: str) -> int:
    """One run of the role's ``tasks_from`` file; returns the recap's changed count."""
    task = {
        "name": "Cutover",
        "ansible.builtin.include_role": {"name": "lamassuiot.postgres.cutover", "tasks_from": tasks_from},
        "vars": {"cutover_config_path": str(config)},
    }
    facts = {"lamassu_pg_host": pg.host, "lamassu_pg_port": pg.port, "lamassu_services": ["ca"]}
    run = run_local_play(tmp_path, pg, {"vars": facts, "tasks": [task]})
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    return recap_changed(run.stdout)


def test_a_run_stopped_before_its_note_keeps_the_original_and_rollback_restores_it(pg, tmp_path):
    config = tmp_path / "lamassu.yml"
    backup, note = Path(f"{config}.pre-lamassu"), Path(f"{config}.lamassu-cutover.json")
    config.write_text(ORIGINAL)
    # What a run stopped between its copy and its note leaves, after the file was edited by hand since.
    backup.write_text("storage:\n  an_older_edit: true\n")

    assert play(tmp_path, pg, config, "main") > 0
    assert backup.read_text() == ORIGINAL
    assert json.loads(note.read_text()) == {"path": str(config), "existed": True}
    assert 'schema: "ca"' in config.read_text()
    assert play(tmp_path, pg, config, "main") == 0
    assert backup.read_text() == ORIGINAL  # the second run does not take the rendered file for the original

    play(tmp_path, pg, config, "rollback")
    assert config.read_text() == ORIGINAL
    assert not backup.exists() and not note.exists()


def test_a_file_the_cutover_created_is_removed_by_rollback(pg, tmp_path):
    config = tmp_path / "lamassu.yml"
    assert play(tmp_path, pg, config, "main") > 0
    assert 'schema: "ca"' in config.read_text() and not Path(f"{config}.pre-lamassu").exists()
    assert play(tmp_path, pg, config, "main") == 0
    play(tmp_path, pg, config, "rollback")
    assert not config.exists() and not Path(f"{config}.lamassu-cutover.json").exists()
