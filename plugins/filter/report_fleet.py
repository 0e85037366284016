# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: report_fleet
short_description: The data of the run report, for every host of the play
version_added: 0.1.0
description:
  - Puts together the P(lamassuiot.postgres.report_summary#filter) of every host of the play; a host without one
    is V(unreachable) when Ansible no longer runs it, else V(not reached) (a later batch of the rollout).
  - Counts the hosts per phase (those V(ok) or V(failed)), lists the failed, unreachable and not reached hosts,
    and names the report files.
options:
  _input:
    description:
      - C(title), C(run_id), C(written_at) - name the run.
      - C(directory) - the report directory, relative to C(cwd) unless absolute.
      - C(services) - the services reported.
      - C(hosts) - every host of the play (C(ansible_play_hosts_all)); C(active) - those Ansible still runs
        (C(ansible_play_hosts)).
      - C(summaries), C(groups) - for each host of C(hosts), its summary (empty when the report did not run on it)
        and its groups.
    type: dict
    required: true
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Assemble the report data of every host of the play
  ansible.builtin.set_fact:
    report_data: "{{ fleet | lamassuiot.postgres.report_fleet }}"
  vars:
    fleet:
      title: status
      run_id: 20260101T000000Z
      written_at: "2026-01-01 00:00:00"
      directory: ./reports
      cwd: "{{ lookup('lamassuiot.postgres.controller').cwd }}"
      services: [ca, va]
      hosts: "{{ ansible_play_hosts_all }}"
      active: "{{ ansible_play_hosts }}"
      summaries: "{{ ansible_play_hosts_all | map('extract', hostvars) | map(attribute='report_summary', default={}) }}"
      groups: "{{ ansible_play_hosts_all | map('extract', hostvars, 'group_names') }}"
  run_once: true
"""

RETURN = r"""
_value:
  description:
    - C(title), C(run_id), C(written_at), C(directory), C(basename) (of the report files), C(services), C(hosts)
      (per host its summary), C(phase_counts) (hosts per phase, V(unknown) last), C(failed), C(unreachable) and
      C(not_reached) (host names) and C(max_duration_s).
  type: dict
  sample: {title: status, run_id: 20260101T000000Z, basename: lamassu-status-20260101T000000Z,
           phase_counts: {legacy: 0, copied: 0, migrated: 2, cleaned: 0, unknown: 0}, failed: [], unreachable: [],
           not_reached: [], max_duration_s: 12.5}
"""

# Ansible wants the documentation first.
from ansible_collections.lamassuiot.postgres.plugins.module_utils.report import fleet_report  # noqa: E402


def report_fleet(facts: dict) -> dict:
    return fleet_report(**facts)


class FilterModule:
    def filters(self):
        return {"report_fleet": report_fleet}
