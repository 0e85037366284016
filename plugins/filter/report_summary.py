# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: report_summary
short_description: One host of the run report, from what the run read and did on it
version_added: 0.1.0
description:
  - Decides what the C(report) role says about one host - its status (V(ok), V(failed), V(unreachable) when
    M(lamassuiot.postgres.postgres_lamassu_info) could not read the server), the phase every service reached at
    least, per service the phase and goose version before and after the run, rows copied, the duration and the
    failure message.
  - A service that M(lamassuiot.postgres.postgres_lamassu_info) sees V(copied) counts as V(migrated) when a migrate
    run of this play left nothing pending (info cannot see migration files kept on the controller).
  - M(lamassuiot.postgres.postgres_lamassu_info) and C(ansible_failed_result) give most of the input;
    P(lamassuiot.postgres.report_fleet#filter) puts the hosts together.
options:
  _input:
    description:
      - C(name) - the host; C(services) - the services to report.
      - C(after) - the result of M(lamassuiot.postgres.postgres_lamassu_info) read after the run (a failed result
        when the server could not be read).
      - C(before) - its result from before the run; empty for C(after).
      - C(migrations) - the results of the migrate runs of the play (C(item), C(pending), C(applied), C(failed)).
      - C(failure) - C(task), C(msg) and C(fix) (P(lamassuiot.postgres.failure_fix#filter)) of the failure of the
        run, empty when it did not fail.
      - C(problems) - the problems the preflight found; null for those of C(after).
      - C(started_at), C(finished_at) - epoch seconds of the run on the host.
      - C(groups) - the host's groups; C(check_mode) - whether the play runs in check mode.
      - C(fix_variables) - the playbook variable that sets each module option a fix names.
    type: dict
    required: true
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Sum up the host for the report
  ansible.builtin.set_fact:
    report_summary: "{{ facts | lamassuiot.postgres.report_summary }}"
  vars:
    facts:
      name: "{{ inventory_hostname }}"
      services: [ca, va]
      after: "{{ report_info }}"
      before: "{{ preflight_info | default({}) }}"
      failure: "{{ lamassu_failure | default({}) }}"
"""

RETURN = r"""
_value:
  description:
    - C(name), C(groups), C(status), C(phase) (V(unknown) without services), C(duration_s), C(failed_task),
      C(message), C(fix) (C(variable), C(value), C(why), C(setting)), C(problems), C(server) (its version), C(rows_copied) and C(services), per service C(name),
      C(phase_before), C(phase), C(goose_before), C(goose_after), C(rows_copied), C(copy_duration_s), C(verified).
  type: dict
  sample: {name: db1, groups: [dev], status: ok, phase: migrated, duration_s: 12.5, failed_task: null, message: null,
           problems: [], server: "15.8", rows_copied: 412, services: []}
"""

# Ansible wants the documentation first.
from ansible_collections.lamassuiot.postgres.plugins.module_utils.report import host_summary  # noqa: E402


def report_summary(facts: dict) -> dict:
    return host_summary(**facts)


class FilterModule:
    def filters(self):
        return {"report_summary": report_summary}
