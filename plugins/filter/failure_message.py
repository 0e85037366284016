# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: failure_message
short_description: The message of a failed task, naming each failed loop item
version_added: 0.1.0
description:
  - Turns the result of a failed task (C(ansible_failed_result) in a C(rescue) section) into one message.
  - "A loop gives C(<item>: <msg>) for each failed item, joined with C(; ); a task without a loop, or whose items
    all succeeded, gives its own C(msg), else C(failed without a message)."
  - The playbooks of the collection note it in C(lamassu_failure) for the report.
options:
  _input:
    description: The result of the failed task.
    type: dict
    required: true
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Note the failure for the report
  ansible.builtin.set_fact:
    lamassu_failure:
      task: "{{ ansible_failed_task.name | default('unknown') }}"
      msg: "{{ ansible_failed_result | lamassuiot.postgres.failure_message }}"
"""

RETURN = r"""
_value:
  description: The message.
  type: str
  sample: "va: Refusing to drop the source database 'va': other sessions are connected: 1234"
"""

# Ansible wants the documentation first.
from ansible_collections.lamassuiot.postgres.plugins.module_utils.report import failure_message  # noqa: E402


class FilterModule:
    def filters(self):
        return {"failure_message": failure_message}
