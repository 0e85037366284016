"""bench/fleet.py on a fleet of two small hosts: every run succeeds, the re-run changes nothing.

The single-host runs are left out (``single=False``): they run the same code on a one-host inventory, and
six ``ansible-playbook`` runs would double the test's time.
"""

from __future__ import annotations

import os

import pytest

from bench.fleet import RUNS, TARGETS, markdown, run_fleet_bench
from bench.measure import TIME

pytestmark = [
    pytest.mark.skipif(bool(os.environ.get("LAMASSU_TEST_DSN")), reason="the fleet bench starts its own servers"),
    pytest.mark.skipif(not os.access(TIME, os.X_OK), reason=f"{TIME} (GNU time) is missing"),
]


def test_the_fleet_bench_measures_every_run_and_the_rerun_changes_nothing(tmp_path):
    report = run_fleet_bench(
        hosts=2, scale=0.001, services=("ca", "va", "kms"), out=tmp_path, single=False, log=lambda line: None
    )
    assert set(report["runs"]) == {f"fleet_{kind}" for kind, _playbook in RUNS}
    for label, run in report["runs"].items():
        assert run["rc"] == 0, (label, run["log"])
        assert set(run["changed"]) == set(run["host_wall_s"]) == {"db01", "db02"}, label
        assert set(run["failed"].values()) == {0}, label
        assert run["wall_s"] > 0 and run["controller_cpu_s"] > 0 and run["module_processes"] > 0, label
        assert run["module_cpu_s"] > 0 and all(wall > 0 for wall in run["host_wall_s"].values()), label
    assert all(report["runs"]["fleet_first"]["changed"].values())
    assert set(report["runs"]["fleet_noop"]["changed"].values()) == {0}
    fleet_targets = [target[0] for target in TARGETS if target[1].startswith("fleet")]
    assert [target["target"] for target in report["targets"]] == fleet_targets
    assert all(target["measured"] > 0 for target in report["targets"])
    text = markdown(report)
    assert "| fleet_noop | upgrade.yml | 2 | 0 | 0 |" in text and "| target |" in text
