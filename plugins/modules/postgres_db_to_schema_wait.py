#!/usr/bin/python
# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: postgres_db_to_schema_wait
short_description: Wait for copies of postgres_db_to_schema running in the background, showing their progress
version_added: 0.1.0
description:
  - Takes the registered results of a loop of M(lamassuiot.postgres.postgres_db_to_schema) (C(register) ->
    C(.results)); the copies in it started in the background (C(async) with C(poll) 0) are waited for, the others
    are returned as they are.
  - >-
    Every O(interval) seconds, prints one line per copy still running, from the progress file the copy keeps
    (O(lamassuiot.postgres.postgres_db_to_schema#module:progress_file)), for example
    C(db1: ca: 12/40 tables, 512.3/2048.0 MB, 45 s) followed by the phase in parentheses - host, loop item,
    tables done of all, MB of the tables done of all (source sizes), seconds the copy has run. Before the
    first write of the file the line says C(starting).
  - When a copy ends, its result replaces its entry (with the same loop keys, such as C(item)), and its job and
    progress file are removed. The result has the shape of a loop's registered results, so that it can be
    registered in place of them.
  - When a copy failed, the task fails after all copies ended, naming each failed copy with its message.
  - Used by the role C(lamassuiot.postgres.db_to_schema); the polls run C(async_status), C(slurp) and C(file) on
    the managed host.
options:
  copies:
    description: The C(results) of a registered loop of M(lamassuiot.postgres.postgres_db_to_schema).
    type: list
    elements: dict
    required: true
  progress_files:
    description:
      - Per loop item (such as the service name), the O(lamassuiot.postgres.postgres_db_to_schema#module:progress_file)
        of its copy. A copy without one is shown as C(starting) until it ends.
    type: dict
    default: {}
  interval:
    description: Seconds between two polls, from 1 to 10.
    type: int
    default: 10
  timeout:
    description:
      - Seconds to wait at most; the task then fails, naming the copies still running, which go on until they end
        or reach their C(async) limit.
    type: int
    default: 86400
attributes:
  action:
    description: Runs on the controller; the polls run modules on the managed host.
    support: full
  async:
    description: Waits for asynchronous jobs; cannot be one.
    support: none
  check_mode:
    description: Copies in check mode never run in the background; the results are returned as they are.
    support: full
  diff_mode:
    description: Not supported.
    support: none
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Start the copies in the background
  lamassuiot.postgres.postgres_db_to_schema:
    source_database: "{{ item }}"
    progress_file: "~/.ansible_async/copy-{{ item }}.json"
  loop: [ca, devicemanager]
  async: 86400
  poll: 0
  register: started

- name: Wait for them, a progress line per copy every 10 seconds
  lamassuiot.postgres.postgres_db_to_schema_wait:
    copies: "{{ started.results }}"
    progress_files:
      ca: "~/.ansible_async/copy-ca.json"
      devicemanager: "~/.ansible_async/copy-devicemanager.json"
  register: copies
"""

RETURN = r"""
results:
  description:
    - The entries of O(copies) in their order, each copy that ran in the background replaced by the result of
      M(lamassuiot.postgres.postgres_db_to_schema) (with its loop keys, and C(schema) set to the loop item, as in
      the C(results) of the copy module's C(services) form, whose entries may be given in O(copies) too).
  returned: always
  type: list
  elements: dict
  sample: [{item: ca, schema: ca, changed: true, tables: [{name: certificates, rows: 1200, bytes: 3358720, seconds: 0.41,
            verified: true}], duration_s: 12.5}]
msg:
  description: "C(All items completed), or C(<item>: <message>) of each failed copy."
  returned: always
  type: str
"""
