"""Run the collection's modules through Ansible itself and collect their results."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from .collection import ROOT, ensure_collection_path
from .pgcluster import Cluster

ACTION_GROUP = "group/lamassuiot.postgres.all"
# The Python the modules run on (the "managed host's"): the test's own unless LAMASSU_MODULE_PYTHON names
# another, e.g. a Python 3.8 with psycopg2 2.8 to try the floor the modules support (docs/testing.md).
MODULE_PYTHON = os.environ.get("LAMASSU_MODULE_PYTHON") or sys.executable


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    results: list[dict]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def result(self) -> dict:
        return self.results[0]


def ansible_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=ensure_collection_path(),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        ANSIBLE_PYTHON_INTERPRETER=MODULE_PYTHON,
        ANSIBLE_RETRY_FILES_ENABLED="False",
    )
    env.update(extra or {})
    return env


def run_playbook(
    playbook: str | Path, *args: str, env: dict | None = None, cwd: str | Path = ROOT
) -> subprocess.CompletedProcess:
    """``ansible-playbook`` from this venv with the checkout on the collection path."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(env), cwd=cwd, check=False)


def run_local_play(
    directory: Path, cluster: Cluster, play: dict, *args: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    """One play (its ``vars``, ``tasks`` or ``roles``) on localhost, the cluster's connection set through
    ``module_defaults`` of the action group; the playbook is written to ``directory``."""
    playbook = directory / f"play-{uuid.uuid4().hex[:6]}.yml"
    defaults = {
        "hosts": "localhost",
        "gather_facts": False,
        "module_defaults": {ACTION_GROUP: cluster.module_defaults()},
    }
    playbook.write_text(json.dumps([{**defaults, **play}]))
    return run_playbook(playbook, "-i", "localhost,", "-c", "local", *args, env=env)


def write_inventory(path: Path, cluster: Cluster | None = None, host: str = "db1", **host_vars) -> Path:
    """An inventory of one host of group ``lamassu_postgres`` that runs the modules locally, reaching ``cluster``."""
    values = {"ansible_connection": "local", "ansible_python_interpreter": MODULE_PYTHON}
    if cluster is not None:
        values |= {"lamassu_pg_host": cluster.host, "lamassu_pg_port": cluster.port}
    path.write_text(json.dumps({"lamassu_postgres": {"hosts": {host: values | host_vars}}}))
    return path


def recap_changed(output: str) -> int:
    """The ``changed`` count of localhost in the play recap of a run without failures."""
    match = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", output)
    assert match, output
    return int(match.group(1))


def run_tasks(
    tasks: list[dict],
    cluster: Cluster | None = None,
    *,
    check: bool = False,
    diff: bool = False,
    verbosity: int = 0,
    connection: dict | None = None,
    env: dict | None = None,
) -> PlaybookRun:
    """Run ``tasks`` on localhost; every result is registered (failures too) and returned in order.

    The connection is set once through ``module_defaults`` of the action group,
    as operators do: the cluster's unless ``connection`` overrides it.
    """
    defaults = connection if connection is not None else (cluster.module_defaults() if cluster else {})
    wrapped = []
    for index, task in enumerate(tasks):
        wrapped.append({**task, "register": f"result_{index}", "ignore_errors": True})
    names = ", ".join(f"result_{i}" for i in range(len(tasks)))
    with tempfile.TemporaryDirectory(prefix="lamassu-play-") as tmp:
        out = Path(tmp, "results.json")
        wrapped.append(
            {
                "name": "Collect results",
                "ansible.builtin.copy": {"content": f"{{{{ [{names}] | to_json }}}}", "dest": str(out), "mode": "0600"},
                "check_mode": False,
                "diff": False,
            }
        )
        play = [
            {"hosts": "localhost", "gather_facts": False, "module_defaults": {ACTION_GROUP: defaults}, "tasks": wrapped}
        ]
        playbook = Path(tmp, "play.yml")
        playbook.write_text(json.dumps(play))
        args = ["-i", "localhost,", "-c", "local"]
        if check:
            args.append("--check")
        if diff:
            args.append("--diff")
        if verbosity:
            args.append("-" + "v" * verbosity)
        proc = run_playbook(playbook, *args, env=env)
        results = json.loads(out.read_text()) if out.exists() else []
    if not results:
        raise AssertionError(
            f"ansible-playbook produced no results (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results)


def run_module(module: str, args: dict, cluster: Cluster | None = None, **kwargs) -> PlaybookRun:
    """One task of ``lamassuiot.postgres.<module>``."""
    return run_tasks([{f"lamassuiot.postgres.{module}": args}], cluster, **kwargs)
