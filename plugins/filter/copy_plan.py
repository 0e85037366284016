# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: copy_plan
short_description: Which copies run in the foreground and which in the background
version_added: 0.1.0
description:
  - The copy part of the plan of a host (C(module_utils/upgrade_plan.py)), the same rule as the C(copies) of
    C(postgres_lamassu_info)'s C(plan) - for the C(db_to_schema) role used without that plan.
  - All copies in the background with C(copy_parallel), else those of legacy databases larger than
    C(async_threshold_mb); none in check mode nor where the host cannot run async jobs.
options:
  _input:
    description: The services, in the order of the copies.
    type: list
    elements: str
    required: true
  legacy:
    description: Per service, the facts of its legacy database (C(size_bytes) is compared with the threshold).
    type: dict
    required: true
  choices:
    description: >-
      C(database), the unified database (part of each progress file's name), and what the run asks for, as the
      C(plan) option of C(postgres_lamassu_info) - C(host), C(copy_parallel), C(async_threshold_mb), C(async_jobs),
      C(async_seconds), C(progress_dir); null entries take its defaults.
    type: dict
    required: true
  check_mode:
    description: Whether the run is in check mode.
    type: bool
    required: true
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Plan the copies of a host
  ansible.builtin.debug:
    msg: "{{ ['ca', 'kms'] | lamassuiot.postgres.copy_plan(preflight_info.legacy, {'database': 'lamassu'}, ansible_check_mode) }}"
"""

RETURN = r"""
_value:
  description: C(foreground), C(background), C(progress_files), C(async_seconds) and C(background_seconds).
  type: dict
  sample: {foreground: [ca], background: [kms], progress_files: {kms: ~/.ansible_async/lamassu-db-to-schema-pg1-lamassu-kms.json},
           async_seconds: 0, background_seconds: 86400}
"""

# Ansible wants the documentation first.
from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput  # noqa: E402
from ansible_collections.lamassuiot.postgres.plugins.module_utils.upgrade_plan import RunChoices  # noqa: E402
from ansible_collections.lamassuiot.postgres.plugins.module_utils.upgrade_plan import copy_plan as plan_copies  # noqa: E402


def copy_plan(services, legacy, choices, check_mode):
    asked = dict(choices)
    database = asked.pop("database")
    try:
        checked = RunChoices.from_option(asked)
    except InvalidInput as exc:
        raise AnsibleFilterError(f"lamassuiot.postgres.copy_plan: {exc}") from exc
    return plan_copies(list(services), legacy, checked, database, bool(check_mode))


class FilterModule:
    def filters(self):
        return {"copy_plan": copy_plan}
