"""The server-wide lock of upgrade.yml: two runs on one server, one finishes, the other refuses at once.

Overlap is forced, not hoped for: a stop hook keeps the run that holds the lock waiting at a gate file until the
test opens it, so the other run meets a held lock whichever of the two gets it first.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from tests.harness.ansible import run_playbook, run_tasks
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import Cluster, throwaway_cluster
from tests.integration.test_migrate_faults import process_tree, wait_for
from tests.integration.test_playbooks import PLAYBOOKS, SERVICES, copied_schemas, output, recap, write_inventory

HOLDERS = "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'lamassu-lock %'"
LOCK_KEY = 2359239940
LOCKED = (
    "FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    " AND ((classid::bigint << 32) | objid::bigint) = %s"
)
WAIT = 300.0
MODULE = "lamassuiot.postgres.postgres_lamassu_lock"
RUN = {"run_id": "20261202T073303Z", "controller_host": "ctl", "controller_pid": 4242}


def gated_inventory(tmp_path: Path, cluster: Cluster, name: str, gate: Path) -> Path:
    """An inventory whose stop hook waits for ``gate``: the run holding the lock stays in it until then."""
    hooks = tmp_path / "hooks.yml"
    hooks.write_text(
        "- name: Wait for the test's gate\n"
        f"  ansible.builtin.wait_for: {{path: '{gate}', timeout: 600}}\n"
        "  when: service_control_hook == 'stop'\n"
    )
    # a report directory per run: two runs started in the same second share a run id
    return write_inventory(
        tmp_path / f"{name}.json",
        {"srv1": ("dev", cluster, {"service_control_hooks_file": str(hooks)})},
        tmp_path / name,
    )


def upgrade_in_background(pool: ThreadPoolExecutor, inventory: Path) -> Future:
    return pool.submit(run_playbook, PLAYBOOKS / "upgrade.yml", "-i", str(inventory))


def holding_controller(cluster: Cluster) -> int:
    """The ansible-playbook process the lock holder names; it runs on this host."""
    names = wait_for(
        lambda: [n for (n,) in cluster.query("postgres", f"SELECT application_name {LOCKED}", (LOCK_KEY,))],
        "a run to hold the lock",
    )
    pid = int(names[0].rsplit(" ", 1)[1].split("@")[0])
    assert "ansible-playbook" in Path(f"/proc/{pid}/cmdline").read_text(), names
    return pid


def holders(cluster: Cluster) -> list[int]:
    return [pid for (pid,) in cluster.query("postgres", HOLDERS)]


def lock_is_free(cluster: Cluster) -> bool:
    return not holders(cluster) and cluster.query("postgres", f"SELECT count(*) {LOCKED}", (LOCK_KEY,)) == [(0,)]


def refused_by(text: str, controller_pid: int) -> bool:
    """The refusal names the holding run: its start time, controller host and process id."""
    return (
        "The upgrade lock of the server" in text
        and "(started " in text
        and f"of controller {socket.gethostname().split('.')[0]}, process {controller_pid} " in text
        and "nothing was changed" in text
    )


def test_two_upgrades_at_once_one_completes_the_other_is_refused_naming_it(tmp_path):
    gate = tmp_path / "gate"
    with throwaway_cluster() as cluster, ThreadPoolExecutor(2) as pool:
        build_legacy(cluster, scale=0.001, services=SERVICES)
        runs = [upgrade_in_background(pool, gated_inventory(tmp_path, cluster, name, gate)) for name in ("one", "two")]
        try:
            controller = holding_controller(cluster)
            done, _pending = wait(runs, timeout=WAIT, return_when=FIRST_COMPLETED)
        finally:
            gate.touch()
        assert len(done) == 1, "one run ends while the other holds the lock"
        refused_run = done.pop()
        refused = refused_run.result()
        completed = next(run for run in runs if run is not refused_run).result(timeout=WAIT)

        assert completed.returncode == 0, output(completed)
        assert copied_schemas(cluster) == sorted(SERVICES)
        assert refused.returncode != 0
        assert refused_by(refused.stdout, controller), output(refused)
        # refused after a first look (read only), before the checks under the lock: nothing of its own was done
        assert recap(refused)["srv1"]["changed"] == 0, output(refused)
        assert "Check everything that would stop the upgrade" not in refused.stdout
        assert "Copy each legacy database" not in refused.stdout

        wait_for(lambda: lock_is_free(cluster), "the holder session to end")
        status = run_playbook(PLAYBOOKS / "status.yml", "-i", str(tmp_path / "one.json"))
        assert status.returncode == 0, output(status)


def test_status_runs_while_the_lock_is_held_and_a_killed_run_frees_it(tmp_path):
    gate = tmp_path / "gate"
    with throwaway_cluster() as cluster, ThreadPoolExecutor(1) as pool:
        build_legacy(cluster, scale=0.001, services=SERVICES)
        inventory = gated_inventory(tmp_path, cluster, "one", gate)
        first = upgrade_in_background(pool, inventory)
        controller = holding_controller(cluster)
        held = holders(cluster)
        try:
            status = run_playbook(PLAYBOOKS / "status.yml", "-i", str(inventory))
            assert status.returncode == 0, output(status)

            dry = run_playbook(PLAYBOOKS / "upgrade.yml", "-i", str(inventory), "--check")
            assert dry.returncode != 0 and refused_by(dry.stdout, controller), output(dry)
            assert holders(cluster) == held, "check mode leaves no holder of its own"
        finally:
            # SIGKILL the run as a CI runner does; the holder is detached and must notice by itself
            for pid in process_tree(controller):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert first.result(timeout=WAIT).returncode != 0

        wait_for(lambda: lock_is_free(cluster), "the killed run's lock to be freed")
        gate.touch()
        again = run_playbook(PLAYBOOKS / "upgrade.yml", "-i", str(inventory))
        assert again.returncode == 0, output(again)
        assert copied_schemas(cluster) == sorted(SERVICES)
        assert lock_is_free(cluster)


def test_module_check_then_take_then_rerun_then_release(pg):
    module = "lamassuiot.postgres.postgres_lamassu_lock"
    owner = {"run_id": "20261202T073303Z", "controller_host": "ctl", "controller_pid": 4242}
    try_lock = f"SELECT pg_try_advisory_lock({LOCK_KEY})"
    try:
        dry = run_tasks([{module: owner}], pg, check=True).result
        assert dry["changed"] and dry["holder"] is None and dry["queries"] == [try_lock], dry
        assert lock_is_free(pg)

        taken = run_tasks([{module: owner}], pg).result
        assert taken["changed"] and taken["queries"] == [try_lock], taken
        assert re.fullmatch(r"lamassu-lock 20261202T073303Z \d{10} 4242@ctl", taken["holder"]["application_name"])
        assert holders(pg) == [taken["holder"]["backend_pid"]]

        again = run_tasks([{module: owner}], pg).result
        assert not again["changed"] and again["renewed"] and again["queries"] == [renewal(owner)], again
        assert again["holder"]["backend_pid"] == taken["holder"]["backend_pid"]

        other = run_tasks([{module: {**owner, "controller_pid": 7}}], pg).result
        assert other["failed"] and "process 4242 (server process" in other["msg"], other
        assert other["holder"]["controller_pid"] == 4242 and holders(pg) == [taken["holder"]["backend_pid"]]

        released = run_tasks([{module: {**owner, "state": "absent"}}], pg).result
        assert released["changed"] and released["queries"] == [
            f"SELECT pg_terminate_backend({taken['holder']['backend_pid']})"
        ]
        assert lock_is_free(pg)
        assert not run_tasks([{module: {**owner, "state": "absent"}}], pg).result["changed"]

        # a run that never releases: the holder gives the lock up after its timeout
        run_tasks([{module: {**owner, "timeout": 1}}], pg)
        wait_for(lambda: lock_is_free(pg), "the holder's time limit")
    finally:
        run_tasks([{module: {"state": "absent", "force": True}}], pg)


def renewal(owner: dict, lease: int = 600) -> str:
    return f"SELECT pg_notify('lamassu_lock', '{owner['run_id']} {owner['controller_pid']}@{owner['controller_host']} {lease}')"


def lease_end(cluster: Cluster) -> int:
    (name,) = [n for (n,) in cluster.query("postgres", f"SELECT application_name {LOCKED}", (LOCK_KEY,))]
    return int(name.split(" ")[2])


def server_now(cluster: Cluster) -> int:
    return cluster.query("postgres", "SELECT floor(extract(epoch FROM now()))::bigint")[0][0]


def test_a_renewal_extends_the_lease_and_a_lease_not_renewed_ends_the_holder(pg):
    owner = {**RUN, "lease": 60}
    try:
        taken = run_tasks([{MODULE: owner}], pg).result
        first = lease_end(pg)
        assert taken["holder"]["lease_until"] == first and first - server_now(pg) <= 60

        renewed = run_tasks([{MODULE: {**owner, "lease": 120}}], pg).result
        assert renewed["renewed"] and not renewed["changed"] and not renewed["retaken"], renewed
        assert renewed["queries"] == [renewal(owner, 120)]
        assert lease_end(pg) == renewed["holder"]["lease_until"] >= first + 60
        assert renewed["holder"]["backend_pid"] == taken["holder"]["backend_pid"]

        run_tasks([{MODULE: {**owner, "lease": 3}}], pg)
        began = time.monotonic()
        wait_for(lambda: lock_is_free(pg), "the holder to end with its lease")
        assert time.monotonic() - began < 3 + 3

        # the run, between two steps, finds that its lease ran out: the free lock is taken again, with a warning
        retaken = run_tasks([{MODULE: {**owner, "state": "renewed"}}], pg).result
        assert retaken["changed"] and retaken["retaken"] and not retaken["renewed"], retaken
        assert "had run out" in " ".join(retaken["warnings"]) and len(holders(pg)) == 1
    finally:
        run_tasks([{MODULE: {"state": "absent", "force": True}}], pg)


@contextlib.contextmanager
def stuck_holder(cluster: Cluster, name: str):
    """A holder that does not end by itself: a plain session holding the lock under a Lamassu holder's name."""
    conn = cluster.connect("postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('application_name', %s, false), pg_advisory_lock(%s)", (name, LOCK_KEY))
        yield conn.get_backend_pid()
    finally:
        conn.close()


def test_a_holder_whose_lease_ran_out_is_taken_over_with_a_warning(pg):
    lapsed = server_now(pg) - 31
    stuck = f"lamassu-lock 20261201T000000Z {lapsed} 999@gone"
    with stuck_holder(pg, stuck) as pid:
        taken = run_tasks([{MODULE: RUN}], pg).result
        assert taken["changed"] and taken["took_over"]["backend_pid"] == pid, taken
        assert taken["took_over"]["run_id"] == "20261201T000000Z"
        assert taken["queries"][0] == f"SELECT pg_terminate_backend({pid})"
        (warning,) = taken["warnings"]
        assert "run 20261201T000000Z" in warning and "its lease ended at" in warning
        assert holders(pg) == [taken["holder"]["backend_pid"]]
        run_tasks([{MODULE: {**RUN, "state": "absent"}}], pg)

    live = f"lamassu-lock 20261201T000000Z {server_now(pg) + 600} 999@gone"
    with stuck_holder(pg, live) as pid:
        refused = run_tasks([{MODULE: RUN}], pg).result
        assert refused["failed"] and "lease runs out at" in refused["msg"], refused
        assert "-e lamassu_break_lock=20261201T000000Z" in refused["msg"]
        assert "pg_terminate_backend" not in refused["msg"]

        wrong = run_tasks([{MODULE: {**RUN, "break_lock": "20261130T000000Z"}}], pg).result
        assert wrong["failed"] and "break_lock names run 20261130T000000Z" in wrong["msg"], wrong
        assert "run 20261201T000000Z" in wrong["msg"]

        broken = run_tasks([{MODULE: {**RUN, "break_lock": "20261201T000000Z"}}], pg).result
        assert broken["changed"] and broken["took_over"]["backend_pid"] == pid, broken
        assert "broken on request" in broken["warnings"][0]
        assert holders(pg) == [broken["holder"]["backend_pid"]]
    run_tasks([{MODULE: {**RUN, "state": "absent"}}], pg)

    with stuck_holder(pg, "psql"):
        refused = run_tasks([{MODULE: {**RUN, "break_lock": "psql"}}], pg).result
        assert refused["failed"] and "not a Lamassu run" in refused["msg"], refused
    assert lock_is_free(pg)


def test_a_run_whose_controller_is_gone_over_ssh_frees_the_lock_after_its_lease(pg):
    """Over SSH the holder cannot watch the controller: the lease ends it, and another run takes the lock."""
    gone = {**RUN, "controller_pid": 999999, "watch_controller": False, "lease": 3}
    try:
        taken = run_tasks([{MODULE: gone}], pg).result
        began = time.monotonic()
        assert taken["changed"] and taken["holder"]["controller_pid"] == 999999, taken
        wait_for(lambda: lock_is_free(pg), "the lease of the run that is gone to run out")
        assert time.monotonic() - began < 3 + 3
        later = run_tasks([{MODULE: {**RUN, "run_id": "20261202T080000Z"}}], pg).result
        assert later["changed"] and "took_over" not in later, later
    finally:
        run_tasks([{MODULE: {"state": "absent", "force": True}}], pg)
