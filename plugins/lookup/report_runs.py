# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: report_runs
short_description: The runs recorded in a report directory, newest first, for its index page
version_added: 0.1.0
description:
  - Reads the C(lamassu-*.json) files the C(report) role writes beside each run's Markdown and HTML report, and
    returns one entry per run, newest first, with each host's one-line verdict.
  - A file that cannot be read or is not a report is left out with a warning.
options:
  _terms:
    description: The report directory (on the controller).
    required: true
    type: list
    elements: str
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: List the runs of the report directory
  ansible.builtin.debug:
    msg: "{{ item.title }} {{ item.run_id }}: {{ item.hosts | map(attribute='verdict') | join('; ') }}"
  loop: "{{ query('lamassuiot.postgres.report_runs', './reports') }}"
"""

RETURN = r"""
_raw:
  description: One entry per run, newest first.
  type: list
  elements: dict
  contains:
    title:
      description: V(upgrade), V(status), V(rollback) or V(cleanup).
      type: str
    run_id:
      description: The id of the run.
      type: str
    started_at:
      description: When the run started (UTC), null when its id does not say.
      type: str
    written_at:
      description: When the report was written (UTC).
      type: str
    check_mode:
      description: Whether the run was a check run.
      type: bool
    html:
      description: The file name of the HTML report.
      type: str
    md:
      description: The file name of the Markdown report.
      type: str
    hosts:
      description: Per host C(name), C(status) and C(verdict).
      type: list
      elements: dict
"""

import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

from ansible.plugins.lookup import LookupBase  # noqa: E402
from ansible.utils.display import Display  # noqa: E402

from ansible_collections.lamassuiot.postgres.plugins.module_utils.report import is_run_report, run_index  # noqa: E402

display = Display()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        reports = []
        for directory in terms:
            for path in sorted(glob.glob(os.path.join(glob.escape(directory), "lamassu-*.json"))):
                try:
                    with open(path, encoding="utf-8") as report:
                        data = json.load(report)
                except (OSError, ValueError) as exc:
                    display.warning(f"report index: {path} left out, it cannot be read: {exc}")
                    continue
                if is_run_report(data):
                    reports.append(data)
                else:
                    display.warning(f"report index: {path} left out, it is not the data of a run report")
        return run_index(reports)
