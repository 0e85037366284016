# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: services
short_description: The names of the six Lamassu services
version_added: 0.1.0
description:
  - Returns the names of the Lamassu services in their usual order, each the name of a legacy database
    and of a schema of the unified database.
  - Use it with C(query) (or C(lookup) with C(wantlist=true)) to get a list.
  - The roles and playbooks of the collection use it as the default of C(lamassu_services), so the list
    is written in one place (C(plugins/module_utils/lamassu.py)).
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Default a list of services to all of them (query returns a list; lookup joins it with commas)
  ansible.builtin.set_fact:
    my_services: "{{ lamassu_services | default(query('lamassuiot.postgres.services')) }}"

- name: Loop over them
  ansible.builtin.debug:
    msg: "{{ item }}"
  loop: "{{ query('lamassuiot.postgres.services') }}"
"""

RETURN = r"""
_raw:
  description: The service names.
  type: list
  elements: str
  sample: [ca, devicemanager, dmsmanager, alerts, va, kms]
"""


# Ansible wants the documentation first.
from ansible.plugins.lookup import LookupBase  # noqa: E402

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import SERVICES  # noqa: E402


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return list(SERVICES)
