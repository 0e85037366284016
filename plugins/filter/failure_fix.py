# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: failure_fix
short_description: The fix a failed task's module named
version_added: 0.1.0
description:
  - Takes the C(fix) of the result of a failed task (C(ansible_failed_result) in a C(rescue) section) - the module
    option that gets past the error, its value and why - or, in a loop, that of the first failed item with one.
  - The playbooks of the collection note it in C(lamassu_failure); the C(report) role shows it as the playbook
    variable that sets the option.
options:
  _input:
    description: C(ansible_failed_result), in a C(rescue) section.
    required: true
    type: dict
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
# playbooks/tasks/note-failure.yml notes it beside the message (lamassuiot.postgres.failure_message).
- name: Show the option that gets past the failure
  ansible.builtin.debug:
    msg: "set {{ fix.option }}={{ fix.value }}: {{ fix.why }}"
  vars:
    fix: "{{ ansible_failed_result | lamassuiot.postgres.failure_fix }}"
  when: fix | length > 0
"""

RETURN = r"""
_value:
  description: C(option), C(value) and C(why); empty when the module named no fix.
  type: dict
  sample: {option: if_target_exists, value: replace, why: copies the source database again}
"""

# Ansible wants the documentation first.
from ansible_collections.lamassuiot.postgres.plugins.module_utils.report import failure_fix  # noqa: E402


class FilterModule:
    def filters(self):
        return {"failure_fix": failure_fix}
