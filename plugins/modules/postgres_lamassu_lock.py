#!/usr/bin/python
# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: postgres_lamassu_lock
short_description: Take or release the server-wide lock of the runs that change the Lamassu layout
version_added: 0.1.0
description:
  - One run at a time per server for the playbooks that change the layout (upgrade, rollback, cleanup).
    The lock is a session advisory lock (key C(2359239940)) in the C(postgres) maintenance database.
  - With O(state=present), starts a detached holder process on the managed host that takes the lock and keeps
    its session open for a lease of O(lease) seconds; the task returns once the lock is held. When another run
    holds it, the task fails at once, naming that run (its id and start time, controller host and process id,
    server process, lease end); nothing is changed.
  - O(state=present) again by the same run while its holder lives renews the lease (RV(renewed)); the module
    sends a C(NOTIFY) on channel C(lamassu_lock), which the holder listens on, and waits until the holder shows
    its new lease end. O(state=renewed) does the same, and takes the lock again when the run's lease ran out and
    the lock is free (RV(retaken)).
  - The holder ends, and the server frees the lock with its session, when its lease runs out without renewal,
    when O(state=absent) ends that session, after O(timeout) seconds, when the O(controller_pid) process ends
    (with O(watch_controller=true)), or when the server goes away. A run that is gone, its controller killed
    over SSH too, keeps the lock for one lease at most.
  - A lock whose holder's lease ended more than 30 seconds ago (by the server's clock) is a holder that failed
    to end; O(state=present) ends its session and takes the lock over (RV(took_over), and a warning). So does
    O(break_lock) for the run it names, whatever its lease.
  - The holder session's C(application_name) is
    C(lamassu-lock <run_id> <lease end> <controller_pid>@<controller_host>) (the lease end in epoch seconds of the
    server's clock, the name cut to 63 bytes); that is how a refused run names the holder, how a renewal and
    O(state=absent) find it, and how a later run sees that its lease ran out.
  - In check mode, O(state=present) only tells whether the lock is free, failing like the real run when another
    run holds it, and leaves no holder behind.
extends_documentation_fragment:
  - lamassuiot.postgres.connection
options:
  state:
    description:
      - Whether this run holds the lock (V(present)) or no longer does (V(absent)).
      - V(renewed) is V(present) for a run that holds the lock already (between its steps); finding the lock free
        then means that its lease ran out, and it is taken again with a warning.
    type: str
    default: present
    choices: [present, renewed, absent]
  run_id:
    description:
      - The run that owns the lock; the playbooks pass their run id, the UTC start time C(%Y%m%dT%H%M%SZ).
      - Required unless O(state=absent) and O(force=true).
      - The holder's name must keep the controller process id within its 63 bytes, which any run id up to 30
        characters does.
    type: str
  controller_host:
    description: The controller host of the run (see the P(lamassuiot.postgres.controller#lookup) lookup).
    type: str
  controller_pid:
    description: The process id of the run's C(ansible-playbook) on the controller.
    type: int
  watch_controller:
    description:
      - End the holder when the O(controller_pid) process ends, so that a killed run frees the lock at once.
      - Only where the module runs on the controller (C(ansible_connection=local)); elsewhere that process id
        means nothing.
    type: bool
    default: false
  timeout:
    description: Longest time in seconds the holder keeps the lock when the run does not release it.
    type: int
    default: 43200
  lease:
    description:
      - Seconds the holder keeps the lock after it is taken or renewed; the run renews it between its steps. A run
        whose controller is killed keeps the lock this long.
      - A renewal may change it.
    type: int
    default: 600
    version_added: 0.1.0
  break_lock:
    description:
      - The run id of a run whose lock to break, as C(terraform force-unlock) does. With O(state=present), when
        that run holds the lock, its session is ended and the lock taken (RV(took_over), and a warning).
      - When another run holds the lock, the task fails naming both.
    type: str
    version_added: 0.1.0
  force:
    description: With O(state=absent), end the holder session of whichever run holds the lock.
    type: bool
    default: false
attributes:
  action:
    description:
      - An action plugin first checks, when Ansible becomes an unprivileged user on the host, that the host can take
        Ansible's files for that user (C(setfacl), or a root login) or that pipelining is on; otherwise the task fails
        naming both fixes, before the module runs.
    support: full
  check_mode:
    description: Reports the holder and the statement it would run; takes and ends nothing.
    support: full
  diff_mode:
    description: No diff.
    support: none
notes:
  - Ending another run's holder (O(force=true)) needs the right to signal its server process (the same role,
    C(pg_signal_backend), or a superuser).
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Take the server-wide lock for this run
  lamassuiot.postgres.postgres_lamassu_lock:
    run_id: "{{ lamassu_run_id }}"
    controller_host: "{{ lookup('lamassuiot.postgres.controller').host }}"
    controller_pid: "{{ lookup('lamassuiot.postgres.controller').pid }}"
    watch_controller: "{{ ansible_connection == 'local' }}"

- name: Renew the lease of the run's lock between two long steps
  lamassuiot.postgres.postgres_lamassu_lock:
    state: renewed
    run_id: "{{ lamassu_run_id }}"
    controller_host: "{{ lookup('lamassuiot.postgres.controller').host }}"
    controller_pid: "{{ lookup('lamassuiot.postgres.controller').pid }}"

- name: Take the lock of a run that is gone, named by its run id
  lamassuiot.postgres.postgres_lamassu_lock:
    run_id: "{{ lamassu_run_id }}"
    controller_host: "{{ lookup('lamassuiot.postgres.controller').host }}"
    controller_pid: "{{ lookup('lamassuiot.postgres.controller').pid }}"
    break_lock: 20261202T073303Z

- name: Release it
  lamassuiot.postgres.postgres_lamassu_lock:
    state: absent
    run_id: "{{ lamassu_run_id }}"
    controller_host: "{{ lookup('lamassuiot.postgres.controller').host }}"
    controller_pid: "{{ lookup('lamassuiot.postgres.controller').pid }}"

- name: Free the lock of a run that is gone (its controller was killed)
  lamassuiot.postgres.postgres_lamassu_lock:
    state: absent
    force: true
"""

RETURN = r"""
lock:
  description: Where the lock lives.
  returned: always
  type: dict
  sample: {database: postgres, key: 2359239940, server: "db1.example.com:5432"}
holder:
  description:
    - With O(state=present), the session holding the lock for this run (V(null) in check mode when it is free).
    - When the task fails because another run holds the lock, that run's session.
  returned: when state is present or renewed
  type: dict
  sample:
    backend_pid: 4242
    application_name: lamassu-lock 20261202T073303Z 1796197385 41235@ci-runner-7
    client: local
    since: "2026-12-02T07:33:05Z"
    run_id: 20261202T073303Z
    controller_host: ci-runner-7
    controller_pid: 41235
    lease_until: 1796197385
renewed:
  description: Whether the run's holder extended its lease (a renewal; V(false) in check mode).
  returned: when state is present or renewed
  type: bool
  version_added: 0.1.0
retaken:
  description: Whether the lease of the run (O(state=renewed)) had run out and the free lock was taken again.
  returned: when state is present or renewed
  type: bool
  version_added: 0.1.0
took_over:
  description: The holder whose session was ended to take the lock (its lease ran out, or O(break_lock)), as RV(holder).
  returned: when a holder was taken over
  type: dict
  version_added: 0.1.0
released:
  description: With O(state=absent), the holder sessions ended (or that would be, in check mode), as RV(holder).
  returned: when state is absent
  type: list
  elements: dict
queries:
  description: The statements run, or that would run in check mode.
  returned: always
  type: list
  elements: str
  sample: [SELECT pg_try_advisory_lock(2359239940)]
fix:
  description:
    - "When the lock is held by another run of the collection: O(break_lock) with that run's id."
    - C(option), C(value) and C(why) (what setting it does); the report shows the playbook variable that sets it.
  returned: on failure, when an option gets past it
  type: dict
  sample: {option: break_lock, value: 20261202T073303Z, why: ends the lock of that run}
"""

# First, with nothing before it that needs Python 3.8: an older host Python fails here with a reason.
from ansible_collections.lamassuiot.postgres.plugins.module_utils import python_floor  # noqa: F401  # pylint: disable=unused-import

# isort: split
from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.module import ModuleContext, run_module
from ansible_collections.lamassuiot.postgres.plugins.module_utils.upgrade_lock import (
    DEFAULT_HOLD_TIMEOUT,
    DEFAULT_LEASE,
    LockRequest,
    Owner,
    release,
    take,
)


def argument_spec() -> dict:
    return {
        "state": {"type": "str", "default": "present", "choices": ["present", "renewed", "absent"]},
        "run_id": {"type": "str"},
        "controller_host": {"type": "str"},
        "controller_pid": {"type": "int"},
        "watch_controller": {"type": "bool", "default": False},
        "timeout": {"type": "int", "default": DEFAULT_HOLD_TIMEOUT},
        "lease": {"type": "int", "default": DEFAULT_LEASE},
        "break_lock": {"type": "str"},
        "force": {"type": "bool", "default": False},
    }


def work(ctx: ModuleContext) -> dict:
    p = ctx.params
    if p["state"] == "absent" and p["force"]:
        return release(ctx.connection, None, ctx.check_mode)
    missing = [name for name in ("run_id", "controller_host", "controller_pid") if p[name] is None]
    if missing:
        raise InvalidInput(f"state={p['state']} needs {', '.join(missing)} to name the run that owns the lock")
    owner = Owner(p["run_id"], p["controller_host"], p["controller_pid"])
    if p["state"] == "absent":
        return release(ctx.connection, owner, ctx.check_mode)
    request = LockRequest(
        owner,
        lease=p["lease"],
        timeout=p["timeout"],
        watch_pid=p["controller_pid"] if p["watch_controller"] else None,
        break_run=p["break_lock"],
        renewal=p["state"] == "renewed",
    )
    return take(ctx.connection, request, ctx.check_mode, ctx.warn)


def main() -> None:
    run_module(argument_spec(), work)


if __name__ == "__main__":
    main()
