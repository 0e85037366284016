"""The upgrade report and the index of the runs, rendered by a real browser (Debian's chromium, headless).

A fleet of two hosts: ``good`` upgrades, ``bad`` fails one migration of ``va``. The rendered page must show the
run's details, what to do next, a bar of the steps per host, per service the copy, the migrations applied and the
failure on the row it belongs to, and mark the failed host; the index lists the runs newest first with verdicts.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import throwaway_cluster
from tests.integration.test_playbooks import (
    NEW_VA_VERSION,
    SERVICES,
    output,
    playbook,
    write_inventory,
    write_migrations,
)

BROKEN_VERSION = 20270303000000
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render(page: Path, screenshot: Path | None = None) -> str:
    """The DOM of ``page`` after chromium loaded it (and a screenshot when asked)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,2400"]
    if screenshot:
        shot = subprocess.run(
            [CHROMIUM, *flags, f"--screenshot={screenshot}", page.as_uri()],
            check=False,
            capture_output=True,
            timeout=120,
        )
        assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page.as_uri()], check=False, capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0 and "</html>" in dom.stdout, dom.stderr[-2000:]
    return dom.stdout


def host_section(dom: str, host: str) -> str:
    return dom.split(f'<h3 id="host-{host}">', 1)[1].split("</table>", 1)[0]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `make browser` installs Debian's chromium with apt")
def test_the_report_in_a_browser_shows_steps_services_failures_and_what_next(tmp_path):
    reports = tmp_path / "reports"
    good_tree = write_migrations(tmp_path / "good")
    bad_tree = write_migrations(tmp_path / "bad")
    (bad_tree / "va" / f"{BROKEN_VERSION}_broken.sql").write_text(
        "-- +goose Up\nALTER TABLE no_such_table ADD x int;\n"
    )
    with contextlib.ExitStack() as stack:
        clusters = {name: stack.enter_context(throwaway_cluster()) for name in ("good", "bad")}
        for cluster in clusters.values():
            build_legacy(cluster, scale=0.001, services=SERVICES)
        trees = {"good": good_tree, "bad": bad_tree}
        hosts = {
            name: ("prod", cluster, {"lamassu_migrations_dir": str(trees[name])}) for name, cluster in clusters.items()
        }
        inventory = write_inventory(tmp_path / "inventory.json", hosts, reports)

        status = playbook("status.yml", inventory)
        assert status.returncode == 0, output(status)
        upgrade = playbook("upgrade.yml", inventory)
        assert upgrade.returncode != 0, output(upgrade)
        assert "bad: FAILED at" in upgrade.stdout and "good: ok in" in upgrade.stdout, output(upgrade)

    page = next(reports.glob("lamassu-upgrade-*.html"))
    dom = render(page, tmp_path / "report.png")
    for section in ("run", "next", "fleet", "steps", "hosts"):
        assert f'<section id="{section}">' in dom, section
    run = dom.split('<section id="run">', 1)[1].split("</section>", 1)[0]
    assert "check mode</th><td>no" in run and str(inventory) in run and "0.1.0" in run
    assert "ansible-core</th><td>2." in run

    next_steps = dom.split('<section id="next">', 1)[1].split("</section>", 1)[0]
    assert "ansible-playbook lamassuiot.postgres.upgrade -i" in next_steps and "--limit bad" in next_steps
    assert "ansible-playbook lamassuiot.postgres.rollback" in next_steps

    # One bar per host, stacked by step; the failed host's bar ends with its failed step, migrate.
    steps = dom.split('<section id="steps">', 1)[1].split("</section>", 1)[0]
    good_bar = steps.split('<g class="host ok">', 1)[1].split("</g>", 1)[0]
    bad_bar = steps.split('<g class="host failed">', 1)[1].split("</g>", 1)[0]
    for step in ("preflight", "stop", "copy", "migrate", "cutover"):
        assert f"good: {step} " in good_bar, step
    assert "bad: migrate " in bad_bar and "bad: cutover" not in bad_bar and "FAILED" in bad_bar

    good = host_section(dom, "good")
    va_row = next(row for row in good.split("<tr") if row.lstrip().startswith('class=""><td>va<'))
    assert f"{NEW_VA_VERSION} {NEW_VA_VERSION}_flag.sql (" in va_row and " ms)" in va_row
    assert "search_path=va" in va_row and '<td class="num">2</td>' in va_row  # va's two tables

    assert '<h3 id="host-bad">bad (FAILED)</h3>' in dom
    bad = host_section(dom, "bad")
    failed_rows = [row.lstrip() for row in bad.split("<tr") if row.lstrip().startswith('class="failed"')]
    assert len(failed_rows) == 1 and failed_rows[0].startswith('class="failed"><td>va<'), bad
    assert "no_such_table" in failed_rows[0] and '<td class="failure">' in failed_rows[0]
    assert '<tr class="failed"><td>bad</td>' in dom  # the hosts table marks it too

    index = render(reports / "index.html")
    runs = index.split('<tr class="run">')[1:]
    assert len(runs) == 2 and "upgrade" in runs[0] and "status" in runs[1], index
    assert '<li class="failed">bad: FAILED at' in runs[0] and '<li class="ok">good: ok in' in runs[0]
    assert f'href="{page.name}"' in runs[0]
