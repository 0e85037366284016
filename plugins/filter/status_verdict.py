# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: status_verdict
short_description: What fails a host in status.yml
version_added: 0.1.0
description:
  - V(cannot be read) with the reason when M(lamassuiot.postgres.postgres_lamassu_info) could not read the host,
    else V(problems) with every problem that would stop an upgrade (the info module's and those of the services' own
    logins, M(lamassuiot.postgres.postgres_lamassu_login_check)); empty when there is none.
options:
  _input:
    description: The result of M(lamassuiot.postgres.postgres_lamassu_info).
    type: dict
    required: true
  login_problems:
    description: The problems of M(lamassuiot.postgres.postgres_lamassu_login_check).
    type: list
    elements: str
    required: true
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Fail a host that cannot be read or has problems
  ansible.builtin.fail:
    msg: "{{ verdict }}"
  vars:
    verdict: "{{ report_info | lamassuiot.postgres.status_verdict(logins.problems | default([])) }}"
  when: verdict | length > 0
"""

RETURN = r"""
_value:
  description: The verdict, or an empty string.
  type: str
  sample: "problems: legacy database 'kms' is missing"
"""

# Ansible wants the documentation first.
from ansible_collections.lamassuiot.postgres.plugins.module_utils.report import status_verdict  # noqa: E402


class FilterModule:
    def filters(self):
        return {"status_verdict": status_verdict}
