# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: controller
short_description: The controller host, the process id and the run id of the running ansible-playbook
version_added: 0.1.0
description:
  - Returns the name of the controller host and the process id of the C(ansible-playbook) (or C(ansible))
    process that runs the play, whichever Ansible process evaluates the lookup.
  - Also the id of the run, the start time of that process, the same in every play, batch and host of the run.
  - The playbooks of the collection name their run (C(lamassu_run_id), the report files) and the owner of the
    server-wide upgrade lock (M(lamassuiot.postgres.postgres_lamassu_lock)) with it.
  - With O(report_dir), also whether the report directory can be written (the preflight's check, without a module
    run).
options:
  report_dir:
    description:
      - A directory of the controller (relative to the directory C(ansible-playbook) runs in) to check - an
        existing directory must be writable, a missing one must be creatable (its nearest existing parent a
        writable directory).
    type: str
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Show who runs the play
  ansible.builtin.debug:
    msg: "{{ lookup('lamassuiot.postgres.controller') }}"
"""

RETURN = r"""
_raw:
  description: One dictionary.
  type: list
  elements: dict
  contains:
    host:
      description: The controller's host name.
      type: str
      sample: ci-runner-7
    pid:
      description: The process id of the main Ansible process of the run.
      type: int
      sample: 41235
    run_id:
      description:
        - The id of the run - the UTC start time of that process, C(%Y%m%dT%H%M%SZ) - read from C(/proc) on
          Linux, from C(ps) elsewhere; the current time when neither tells.
        - The same in every process of the run, so that no play (one that C(--limit) may skip) has to name the run.
      type: str
      sample: 20261202T073303Z
    cwd:
      description:
        - The directory C(ansible-playbook) runs in (its real working directory, not C($PWD), which a caller may
          leave stale); relative report paths are taken from it.
      type: str
      sample: /home/operator/lamassu-ops
    collection_version:
      description: The version of this collection (its C(MANIFEST.json) when installed, else its C(galaxy.yml)).
      type: str
      sample: 0.4.0
    ansible_core_version:
      description: The version of ansible-core that runs the play.
      type: str
      sample: 2.19.4
    report_dir_writable:
      description: With O(report_dir) - whether the reports can be written there; null without it.
      type: bool
    report_dir_problem:
      description: With O(report_dir) not writable - the sentence the preflight reports; null otherwise.
      type: str
"""


# Ansible wants the documentation first.
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402

from ansible.module_utils.ansible_release import __version__ as ansible_core_version  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

from ansible_collections.lamassuiot.postgres.plugins.plugin_utils.run_id import run_id  # noqa: E402

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collection_version() -> str | None:
    """The version of an installed collection is in MANIFEST.json, that of a checkout in galaxy.yml."""
    try:
        with open(os.path.join(COLLECTION_ROOT, "MANIFEST.json"), encoding="utf-8") as manifest:
            return json.load(manifest)["collection_info"]["version"]
    except (OSError, ValueError, KeyError):
        pass
    try:
        with open(os.path.join(COLLECTION_ROOT, "galaxy.yml"), encoding="utf-8") as galaxy:
            found = re.search(r"^version:\s*['\"]?([^'\"\s]+)", galaxy.read(), re.MULTILINE)
    except OSError:
        return None
    return found.group(1) if found else None


def can_write_directory(path: str) -> bool:
    """An existing directory writable, or a missing one whose nearest existing parent is a writable directory."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    return os.path.isdir(probe) and os.access(probe, os.W_OK | os.X_OK)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        report_dir = self.get_option("report_dir")
        # Tasks are templated in worker processes forked from the main process; the run is the main process.
        parent = multiprocessing.parent_process()
        pid = parent.pid if parent is not None else os.getpid()
        writable = None if report_dir is None else can_write_directory(report_dir)
        problem = None
        if writable is False:
            problem = (
                f"report directory {report_dir} of the controller is not a writable directory (lamassu_report_dir)"
            )
        return [
            {
                "host": socket.gethostname().split(".")[0] or "unknown",
                "pid": pid,
                "run_id": run_id(pid),
                "cwd": os.getcwd(),
                "collection_version": collection_version(),
                "ansible_core_version": ansible_core_version,
                "report_dir_writable": writable,
                "report_dir_problem": problem,
            }
        ]
