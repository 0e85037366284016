#!/usr/bin/python
# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: lamassu_report_files
short_description: Write the report files of a run on the controller
version_added: 0.1.0
description:
  - Writes C(<directory>/<basename>.json) (the run's data), C(.md) and C(.html) from the report data of
    P(lamassuiot.postgres.report_fleet#filter), then C(<directory>/index.html), every run of the directory (its
    C(lamassu-*.json) files) newest first with each host's verdict. A file that is not a run's data is left out with
    a warning.
  - An action plugin that runs on the controller in the Ansible process (no module is sent anywhere); the templates
    are those of the C(lamassuiot.postgres.report) role, which is where this runs. Each file is replaced
    atomically. Writes in check mode too and never reports a change.
options:
  data:
    description: The report data (C(report_data) of the C(report) role), with C(directory) and C(basename).
    type: dict
    required: true
attributes:
  check_mode:
    support: full
    description: The reports are written in check mode too; they describe the run.
  diff_mode:
    support: none
    description: No diff is shown.
  platform:
    support: full
    platforms: all
    description: Runs on the controller.
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Write the reports and the index of the runs
  lamassuiot.postgres.lamassu_report_files:
    data: "{{ report_data }}"
  run_once: true
"""

RETURN = r"""
files:
  description: The files written, the run's JSON, Markdown and HTML, then the index.
  returned: success
  type: list
  elements: str
  sample: [reports/lamassu-status-20260101T000000Z.json, reports/lamassu-status-20260101T000000Z.md,
           reports/lamassu-status-20260101T000000Z.html, reports/index.html]
"""
