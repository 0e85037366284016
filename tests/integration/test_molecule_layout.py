"""The Molecule scenarios and the example migration tree, checked without running them (``make test`` runs them).

* Molecule finds every scenario and its instances at the top-level ``molecule/`` (the docker scenario's
  containers by the prefix that keeps them apart from the harness's ``lamassu-test-*``);
* ``docs/examples/migrations`` (used by the scenarios and ``make demo``) agrees with the
  legacy fixture's goose history: every applied version has its file, nothing older than
  a service's newest applied version is unapplied (goose would call it missing), some
  services have newer migrations, and every SQL file parses as goose parses it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.parser import parse_sql_file
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.source import collect
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import SERVICES
from tests.harness.collection import ROOT, ensure_collection_path
from tests.harness.fixture import GOOSE_HISTORY

MIGRATIONS = ROOT / "docs" / "examples" / "migrations"
FILE_NAME = re.compile(r"^(00000000000001|\d{14})_[a-z0-9_]+\.(sql|go|py)$")


def test_molecule_finds_every_scenario():
    ensure_collection_path()
    env = {
        **os.environ,
        "MOLECULE_GLOB": "molecule/*/molecule.yml",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_COLOR": "1",
    }
    molecule = Path(sys.executable).parent / "molecule"
    proc = subprocess.run(
        [str(molecule), "list", "--format", "plain"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {tuple(line.split()[:4]) for line in proc.stdout.splitlines() if line.strip()}
    for instance, driver, name in (
        ("lamassu-pg", "default", "default"),
        ("pg-dev", "default", "fleet"),
        ("pg-staging", "default", "fleet"),
        ("pg-prod", "default", "fleet"),
        ("lamassu-molecule-dev", "docker", "docker"),
        ("lamassu-molecule-staging", "docker", "docker"),
        ("lamassu-molecule-prod", "docker", "docker"),
    ):
        assert (instance, driver, "ansible", name) in rows, proc.stdout


@pytest.mark.parametrize("service", SERVICES)
def test_example_tree_agrees_with_the_fixture_history(service):
    names = sorted(os.listdir(MIGRATIONS / service))
    assert all(FILE_NAME.match(name) for name in names), names
    versions = [source.version for source in collect(str(MIGRATIONS / service))]
    applied = set(GOOSE_HISTORY[service])
    newest = max(applied)
    assert applied <= set(versions), f"applied versions without a file: {sorted(applied - set(versions))}"
    assert [v for v in versions if v < newest and v not in applied] == []


def test_example_tree_has_new_migrations_for_some_services():
    newer = {
        service: [s.version for s in collect(str(MIGRATIONS / service)) if s.version > max(GOOSE_HISTORY[service])]
        for service in SERVICES
    }
    assert sum(map(len, newer.values())) >= 3, newer
    for service, versions in newer.items():
        for source in collect(str(MIGRATIONS / service)):
            if source.version in versions:
                assert source.kind == "sql", source
                assert parse_sql_file(source.path).up, source


@pytest.mark.parametrize("service", SERVICES)
def test_example_sql_files_parse_as_goose_parses_them(service):
    for source in collect(str(MIGRATIONS / service)):
        if source.kind == "sql":
            parsed = parse_sql_file(source.path)
            assert parsed.up and parsed.down, source.name
