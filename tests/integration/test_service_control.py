"""roles/service_control: the exact commands of systemd and docker compose, and the replica bookkeeping of Kubernetes.

No systemd, Docker engine or cluster here: the commands and modules are replaced at the edge. ``systemctl`` and
``docker`` are fake executables first on PATH that log their argv and keep a small state; ``kubernetes.core`` is a
test-only collection first on ANSIBLE_COLLECTIONS_PATH whose k8s_info / k8s_scale / k8s / k8s_json_patch read and
write a JSON file of workloads and log every call that changes one. The real kubernetes.core (``make
kubernetes-core``) is what ansible-lint and --syntax-check see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.harness.ansible import run_playbook
from tests.harness.collection import COLLECTIONS_DIR, ROOT, ensure_collection_path
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import throwaway_cluster
from tests.integration.test_playbooks import (
    PLAYBOOKS,
    SERVICES,
    accepts_writes,
    copied_schemas,
    output,
    recap,
    write_inventory,
)

ANNOTATION = "postgres.lamassu.io/replicas-before-stop"
NAMESPACE = "lamassu"
# The chart's workloads and the replicas they run; dms-manager was scaled to 0 by its operator before the upgrade.
WORKLOADS = {
    "Deployment/ca": 2,
    "Deployment/device-manager": 1,
    "Deployment/dms-manager": 0,
    "Deployment/alerts": 3,
    "StatefulSet/va": 1,
    "StatefulSet/kms": 1,
}


def run_role(tmp_path: Path, entry: str, extra_vars: dict, *, env: dict | None = None, check: bool = False):
    """The role's entry point through ansible-playbook against localhost; returns the process and its recap."""
    play = tmp_path / f"{entry}.yml"
    play.write_text(
        json.dumps(
            [
                {
                    "name": f"Service control {entry}",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Run the entry point",
                            "ansible.builtin.include_role": {
                                "name": "lamassuiot.postgres.service_control",
                                "tasks_from": entry,
                            },
                        }
                    ],
                }
            ]
        )
    )
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps(extra_vars))
    args = ["-i", "localhost,", "-c", "local", "-e", f"@{variables}", *(["--check"] if check else [])]
    proc = run_playbook(play, *args, env=env)
    counts = recap(proc).get("localhost", {})
    return proc, counts


def fake_executable(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def path_env(bin_dir: Path) -> dict:
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


# --- systemd -------------------------------------------------------------------------------------------------------

SYSTEMCTL = """
import json, sys
from pathlib import Path
state = Path(__file__).with_name("systemctl.json")
data = json.loads(state.read_text())
args = [a.strip("'") for a in sys.argv[1:]]
data["calls"].append(args)
command, unit = args[0], args[-1]
if command == "show":
    active = "active" if unit in data["active"] else "inactive"
    print(f"Id={unit}\\nLoadState=loaded\\nActiveState={active}\\nSubState=running")
elif command == "stop":
    data["active"].remove(unit)
elif command == "start":
    data["active"].append(unit)
state.write_text(json.dumps(data))
"""


def systemctl(tmp_path: Path, active: list[str]) -> tuple[dict, Path]:
    bin_dir = tmp_path / "bin"
    fake_executable(bin_dir, "systemctl", SYSTEMCTL)
    state = bin_dir / "systemctl.json"
    state.write_text(json.dumps({"active": active, "calls": []}))
    return path_env(bin_dir), state


def systemctl_calls(state: Path) -> list[list[str]]:
    data = json.loads(state.read_text())
    state.write_text(json.dumps({**data, "calls": []}))
    return data["calls"]


def test_systemd_stops_running_units_and_starts_stopped_ones(tmp_path):
    variables = {"lamassu_service_control": "systemd", "service_control_units": ["lamassu-ca", "lamassu-va"]}
    env, state = systemctl(tmp_path, active=["lamassu-ca"])

    proc, counts = run_role(tmp_path, "stop", variables, env=env)
    assert proc.returncode == 0, output(proc)
    assert counts["changed"] == 1
    assert systemctl_calls(state) == [["show", "lamassu-ca"], ["stop", "lamassu-ca"], ["show", "lamassu-va"]]

    again, counts = run_role(tmp_path, "stop", variables, env=env)
    assert again.returncode == 0 and counts["changed"] == 0, output(again)
    assert systemctl_calls(state) == [["show", "lamassu-ca"], ["show", "lamassu-va"]]

    started, counts = run_role(tmp_path, "start", variables, env=env)
    assert started.returncode == 0 and counts["changed"] == 1, output(started)
    assert systemctl_calls(state) == [
        ["show", "lamassu-ca"],
        ["start", "lamassu-ca"],
        ["show", "lamassu-va"],
        ["start", "lamassu-va"],
    ]


def test_systemd_without_units_is_refused(tmp_path):
    env, state = systemctl(tmp_path, active=[])
    proc, _facts = run_role(tmp_path, "stop", {"lamassu_service_control": "systemd"}, env=env)
    assert proc.returncode != 0
    assert "service_control_method is systemd but service_control_units is empty" in proc.stdout, output(proc)
    assert systemctl_calls(state) == []


def test_none_runs_only_the_hooks_file_with_the_hook_variable(tmp_path):
    log = tmp_path / "hooks.log"
    hooks = tmp_path / "hooks.yml"
    hooks.write_text(
        json.dumps(
            [
                {
                    "name": "Note the hook",
                    "ansible.builtin.shell": f"echo {{{{ service_control_hook }}}} >> {log}",
                    "changed_when": False,
                }
            ]
        )
    )
    for entry in ("stop", "start"):
        proc, _facts = run_role(tmp_path, entry, {"service_control_hooks_file": str(hooks)})
        assert proc.returncode == 0, output(proc)
    assert log.read_text() == "stop\nstart\n"

    nothing, counts = run_role(tmp_path, "stop", {})
    assert nothing.returncode == 0 and counts["changed"] == 0, output(nothing)


# --- docker compose -------------------------------------------------------------------------------------------------

DOCKER = """
import json, os, sys
from pathlib import Path
state = Path(__file__).with_name("docker.json")
data = json.loads(state.read_text())
args = sys.argv[1:]
data["calls"].append({"argv": args, "cwd": os.getcwd()})
position = 1
while args[position] == "-f":
    position += 2
command, services = args[position], args[position + 1:]
if command == "ps":
    print("\\n".join(data["running"]))
elif command == "stop":
    data["running"] = [s for s in data["running"] if s not in services]
elif command == "start":
    data["running"] += services
state.write_text(json.dumps(data))
"""


def test_compose_stops_and_starts_exactly_the_named_services_of_the_project(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_executable(bin_dir, "docker", DOCKER)
    state = bin_dir / "docker.json"
    # keycloak is not a Lamassu service of the list: never touched; va is already stopped
    state.write_text(json.dumps({"running": ["ca", "keycloak", "kms"], "calls": []}))
    project = tmp_path / "lamassu-compose"
    project.mkdir()
    variables = {
        "lamassu_service_control": "compose",
        "service_control_compose_project_dir": str(project),
        "service_control_compose_files": ["docker-compose.yml", "lamassu.override.yml"],
        "service_control_compose_services": ["ca", "va", "kms"],
    }
    compose = ["compose", "-f", "docker-compose.yml", "-f", "lamassu.override.yml"]
    ps = [*compose, "ps", "--services", "--status", "running"]

    def calls() -> list[list[str]]:
        data = json.loads(state.read_text())
        state.write_text(json.dumps({**data, "calls": []}))
        assert {call["cwd"] for call in data["calls"]} <= {str(project)}
        return [call["argv"] for call in data["calls"]]

    # check mode reads which services run and stops none (the command module does not run in check mode)
    checked, _facts = run_role(tmp_path, "stop", variables, env=path_env(bin_dir), check=True)
    assert checked.returncode == 0, output(checked)
    assert calls() == [ps]

    stopped, counts = run_role(tmp_path, "stop", variables, env=path_env(bin_dir))
    assert stopped.returncode == 0 and counts["changed"] == 1, output(stopped)
    assert calls() == [ps, [*compose, "stop", "ca", "kms"]]
    assert json.loads(state.read_text())["running"] == ["keycloak"]

    again, counts = run_role(tmp_path, "stop", variables, env=path_env(bin_dir))
    assert again.returncode == 0 and counts["changed"] == 0, output(again)
    assert calls() == [ps]

    started, counts = run_role(tmp_path, "start", variables, env=path_env(bin_dir))
    assert started.returncode == 0 and counts["changed"] == 1, output(started)
    assert calls() == [ps, [*compose, "start", "ca", "va", "kms"]]

    # no files: compose finds its own in the project directory
    default_files, _facts = run_role(
        tmp_path, "stop", {**variables, "service_control_compose_files": []}, env=path_env(bin_dir)
    )
    assert default_files.returncode == 0, output(default_files)
    assert calls() == [["compose", "ps", "--services", "--status", "running"], ["compose", "stop", "ca", "va", "kms"]]


def test_compose_without_project_is_refused(tmp_path):
    proc, _facts = run_role(tmp_path, "stop", {"lamassu_service_control": "compose"})
    assert proc.returncode != 0
    assert "set service_control_compose_project_dir and service_control_compose_services" in proc.stdout, output(proc)


# --- Kubernetes ------------------------------------------------------------------------------------------------------

STUB_COMMON = """
import json
from pathlib import Path
from ansible.module_utils.basic import AnsibleModule

STATE = Path({state!r})
SPEC = dict(
    api_version=dict(type="str", default="v1"),
    kind=dict(type="str", required=True),
    name=dict(type="str", required=True),
    namespace=dict(type="str"),
    kubeconfig=dict(type="raw"),
    context=dict(type="str"),
)


def load():
    return json.loads(STATE.read_text())


def save(data):
    STATE.write_text(json.dumps(data, indent=1))


def key(params):
    return f"{{params['namespace']}}/{{params['kind']}}/{{params['name']}}"


def log(data, module, **call):
    data["calls"].append(dict(module=NAME, workload=key(module.params).split("/", 1)[1], **call))
"""

STUBS = {
    "k8s_info": """
def main():
    module = AnsibleModule(argument_spec=SPEC, supports_check_mode=True)
    data = load()
    found = data["objects"].get(key(module.params))
    resources = []
    if found is not None:
        p = module.params
        metadata = dict(name=p["name"], namespace=p["namespace"], annotations=found["annotations"])
        resources.append(dict(kind=p["kind"], metadata=metadata, spec=dict(replicas=found["replicas"])))
    module.exit_json(changed=False, resources=resources, api_found=True)
""",
    "k8s_scale": """
def main():
    spec = dict(SPEC, replicas=dict(type="int", required=True), wait=dict(type="bool", default=True),
                wait_timeout=dict(type="int", default=20))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    data = load()
    found = data["objects"][key(module.params)]
    changed = found["replicas"] != module.params["replicas"]
    if changed and not module.check_mode:
        found["replicas"] = module.params["replicas"]
        log(data, module, replicas=module.params["replicas"], wait=module.params["wait"])
        save(data)
    module.exit_json(changed=changed)
""",
    "k8s": """
def main():
    spec = dict(SPEC, state=dict(type="str", required=True), definition=dict(type="dict", required=True))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    assert module.params["state"] == "patched", module.params["state"]
    data = load()
    found = data["objects"][key(module.params)]
    wanted = dict(found["annotations"], **module.params["definition"]["metadata"]["annotations"])
    changed = wanted != found["annotations"]
    if changed and not module.check_mode:
        found["annotations"] = wanted
        log(data, module, annotations=module.params["definition"]["metadata"]["annotations"])
        save(data)
    module.exit_json(changed=changed)
""",
    "k8s_json_patch": """
def main():
    spec = dict(SPEC, patch=dict(type="list", elements="dict", required=True))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    data = load()
    found = data["objects"][key(module.params)]
    changed = False
    for operation in module.params["patch"]:
        assert operation["op"] == "remove", operation
        prefix = "/metadata/annotations/"
        assert operation["path"].startswith(prefix), operation
        name = operation["path"][len(prefix):].replace("~1", "/").replace("~0", "~")
        if name not in found["annotations"]:
            module.fail_json(msg=f"no annotation {name}")
        changed = True
        if not module.check_mode:
            del found["annotations"][name]
            log(data, module, removed=name)
    save(data)
    module.exit_json(changed=changed)
""",
}


class FakeCluster:
    """Workloads in a JSON file that the stub kubernetes.core modules read and change."""

    def __init__(self, tmp_path: Path, workloads: dict[str, int]):
        self.state = tmp_path / "cluster.json"
        self.collections = tmp_path / "stubs"
        modules = self.collections / "ansible_collections" / "kubernetes" / "core" / "plugins" / "modules"
        modules.mkdir(parents=True)
        (modules.parents[1] / "meta").mkdir()
        (modules.parents[1] / "meta" / "runtime.yml").write_text("---\nrequires_ansible: '>=2.16'\n")
        common = STUB_COMMON.format(state=str(self.state))
        for name, body in STUBS.items():
            (modules / f"{name}.py").write_text(
                common + f"NAME = {name!r}\n" + body + "\n\nif __name__ == '__main__':\n    main()\n"
            )
        objects = {
            f"{NAMESPACE}/{w}": {"replicas": n, "annotations": {"reloader.stakater.com/auto": "true"}}
            for w, n in workloads.items()
        }
        self.state.write_text(json.dumps({"objects": objects, "calls": []}))

    @property
    def env(self) -> dict:
        return {"ANSIBLE_COLLECTIONS_PATH": f"{self.collections}{os.pathsep}{ensure_collection_path()}"}

    def replicas(self) -> dict[str, int]:
        return {k.split("/", 1)[1]: v["replicas"] for k, v in json.loads(self.state.read_text())["objects"].items()}

    def recorded(self) -> dict[str, str]:
        objects = json.loads(self.state.read_text())["objects"]
        return {
            k.split("/", 1)[1]: v["annotations"][ANNOTATION]
            for k, v in objects.items()
            if ANNOTATION in v["annotations"]
        }

    def set(self, workload: str, replicas: int) -> None:
        data = json.loads(self.state.read_text())
        data["objects"][f"{NAMESPACE}/{workload}"]["replicas"] = replicas
        self.state.write_text(json.dumps(data))

    def calls(self) -> list[dict]:
        data = json.loads(self.state.read_text())
        self.state.write_text(json.dumps({**data, "calls": []}))
        return data["calls"]


K8S = {"lamassu_service_control": "kubernetes", "service_control_k8s_namespace": NAMESPACE}
RUNNING = {w: n for w, n in WORKLOADS.items() if n > 0}


def test_kubernetes_stop_records_and_scales_to_zero_start_restores_exactly_and_reruns_change_nothing(tmp_path):
    cluster = FakeCluster(tmp_path, WORKLOADS)

    checked, counts = run_role(tmp_path, "stop", K8S, env=cluster.env, check=True)
    assert checked.returncode == 0, output(checked)
    assert cluster.calls() == [] and cluster.replicas() == WORKLOADS and cluster.recorded() == {}

    stopped, _facts = run_role(tmp_path, "stop", K8S, env=cluster.env)
    assert stopped.returncode == 0, output(stopped)
    calls = cluster.calls()
    # every running workload is recorded before any is scaled, and only those
    assert calls[: len(RUNNING)] == [
        {"module": "k8s", "workload": w, "annotations": {ANNOTATION: str(n)}} for w, n in RUNNING.items()
    ]
    assert calls[len(RUNNING) :] == [
        {"module": "k8s_scale", "workload": w, "replicas": 0, "wait": True} for w in RUNNING
    ]
    assert cluster.replicas() == dict.fromkeys(WORKLOADS, 0)
    assert cluster.recorded() == {w: str(n) for w, n in RUNNING.items()}

    again, counts = run_role(tmp_path, "stop", K8S, env=cluster.env)
    assert again.returncode == 0 and counts["changed"] == 0, output(again)
    assert cluster.calls() == [] and cluster.recorded() == {w: str(n) for w, n in RUNNING.items()}

    started, _facts = run_role(tmp_path, "start", K8S, env=cluster.env)
    assert started.returncode == 0, output(started)
    assert cluster.calls() == [
        *({"module": "k8s_scale", "workload": w, "replicas": n, "wait": True} for w, n in RUNNING.items()),
        *({"module": "k8s_json_patch", "workload": w, "removed": ANNOTATION} for w in RUNNING),
    ]
    assert cluster.replicas() == WORKLOADS and cluster.recorded() == {}

    again, counts = run_role(tmp_path, "start", K8S, env=cluster.env)
    assert again.returncode == 0 and counts["changed"] == 0, output(again)
    assert cluster.calls() == [] and cluster.replicas() == WORKLOADS


def test_kubernetes_a_workload_scaled_up_since_its_record_is_recorded_again(tmp_path):
    """After `helm upgrade` brought a stopped release back, a later stop (rollback.yml) records the new count."""
    cluster = FakeCluster(tmp_path, WORKLOADS)
    assert run_role(tmp_path, "stop", K8S, env=cluster.env)[0].returncode == 0
    cluster.calls()
    cluster.set("Deployment/ca", 4)

    stopped, _facts = run_role(tmp_path, "stop", K8S, env=cluster.env)
    assert stopped.returncode == 0, output(stopped)
    assert cluster.calls() == [
        {"module": "k8s", "workload": "Deployment/ca", "annotations": {ANNOTATION: "4"}},
        {"module": "k8s_scale", "workload": "Deployment/ca", "replicas": 0, "wait": True},
    ]
    assert run_role(tmp_path, "start", K8S, env=cluster.env)[0].returncode == 0
    assert cluster.replicas() == {**WORKLOADS, "Deployment/ca": 4}


def test_kubernetes_missing_workload_is_refused_before_anything_is_scaled(tmp_path):
    cluster = FakeCluster(tmp_path, {w: n for w, n in WORKLOADS.items() if w != "StatefulSet/kms"})
    proc, _facts = run_role(tmp_path, "stop", K8S, env=cluster.env)
    assert proc.returncode != 0
    assert f"Not found in namespace {NAMESPACE}: kms." in proc.stdout, output(proc)
    assert "Nothing was scaled." in proc.stdout
    assert cluster.calls() == [] and cluster.recorded() == {}


def test_kubernetes_upgrade_leaves_the_services_stopped_and_rollback_restores_their_replicas(tmp_path):
    """The playbooks: upgrade.yml stops before the copy and starts nothing; rollback.yml restores the counts."""
    cluster_state = FakeCluster(tmp_path, WORKLOADS)
    with throwaway_cluster() as cluster:
        if cluster.external:
            pytest.skip("the playbooks use the fixed legacy names, which an external server may hold")
        build_legacy(cluster, scale=0.001, services=SERVICES)
        inventory = write_inventory(tmp_path / "inventory.json", {"db1": ("dev", cluster, K8S)}, tmp_path / "reports")

        upgraded = run_playbook(PLAYBOOKS / "upgrade.yml", "-i", str(inventory), env=cluster_state.env)
        assert upgraded.returncode == 0, output(upgraded)
        assert copied_schemas(cluster) == sorted(SERVICES)
        assert cluster_state.replicas() == dict.fromkeys(WORKLOADS, 0)
        assert cluster_state.recorded() == {w: str(n) for w, n in RUNNING.items()}
        assert [c["module"] for c in cluster_state.calls()] == ["k8s"] * len(RUNNING) + ["k8s_scale"] * len(RUNNING)

        again = run_playbook(PLAYBOOKS / "upgrade.yml", "-i", str(inventory), env=cluster_state.env)
        assert again.returncode == 0 and recap(again)["db1"]["changed"] == 0, output(again)
        assert cluster_state.calls() == []

        rolled_back = run_playbook(PLAYBOOKS / "rollback.yml", "-i", str(inventory), env=cluster_state.env)
        assert rolled_back.returncode == 0, output(rolled_back)
        assert cluster_state.replicas() == WORKLOADS and cluster_state.recorded() == {}
        assert all(accepts_writes(cluster, service) for service in SERVICES)


# --- the example inventory against the real kubernetes.core ----------------------------------------------------------


@pytest.fixture(scope="module")
def kubernetes_core() -> Path:
    """The pinned kubernetes.core that `make kubernetes-core` extracts (downloaded once, then cached)."""
    manifest = COLLECTIONS_DIR / "ansible_collections" / "kubernetes" / "core" / "MANIFEST.json"
    if not manifest.exists():
        subprocess.run(["make", "-s", "kubernetes-core"], cwd=ROOT, check=True, capture_output=True)
    return manifest.parent


def test_kubernetes_example_inventory_passes_syntax_check_and_the_production_lint(kubernetes_core):
    inventory = PLAYBOOKS / "inventories" / "kubernetes"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": ensure_collection_path()}
    for name in ("upgrade.yml", "rollback.yml"):
        checked = run_playbook(PLAYBOOKS / name, "-i", str(inventory), "--syntax-check")
        assert checked.returncode == 0, output(checked)
    linted = subprocess.run(
        [
            bin_dir / "ansible-lint",
            "--offline",
            "--profile",
            "production",
            "-q",
            "--nocolor",
            "roles/service_control",
            "playbooks/inventories/kubernetes",
            "playbooks/upgrade.yml",
            "playbooks/rollback.yml",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    variables = (inventory / "group_vars" / "lamassu_postgres.yml").read_text()
    assert "lamassu_service_control: kubernetes" in variables and "cutover_target: helm" in variables
