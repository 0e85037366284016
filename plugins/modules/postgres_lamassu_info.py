#!/usr/bin/python
# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: postgres_lamassu_info
short_description: Read-only facts about a Lamassu PostgreSQL server before, during and after the upgrade
version_added: 0.1.0
description:
  - Reads the server (version, encoding, C(max_connections), data directory, the login role's privileges), every
    legacy service database (exists, owner, size, goose version, tables with row estimates, frozen or not, other
    sessions connected), the unified database (exists, per schema the goose version, tables and the copy
    recorded in the journal of M(lamassuiot.postgres.postgres_db_to_schema)), and gives each service a phase.
  - Phases. V(legacy) - the journal records no copy of the legacy database into the service schema (or the
    schema is no longer that copy). V(copied) - a recorded copy exists and the legacy database still exists.
    V(migrated) - copied and at its target - with the migrations (O(migrations_path) or O(migration_files)), no
    migration of the service is pending (one still pending leaves it V(copied), even when others ran); without
    them, M(lamassuiot.postgres.postgres_lamassu_migrate) recorded that a run against a tree left nothing pending in
    the schema (C(migration_check) of RV(services)) and the schema's goose version is still the recorded one,
    or else (no record, or a record whose version no longer matches, after a C(down)) the schema's goose version is
    higher than the copied version. V(cleaned) - the legacy database is gone and the schema holds a recorded copy.
  - RV(problems) lists every condition that stops an upgrade, all at once; RV(ready) is true when there is none.
  - RV(online) says whether the online move (O(plan.move_mode=online)) can run for the services still to copy, and
    RV(replication_slots) lists the collection's logical replication slots; a slot not in use while no run holds the
    upgrade lock is left over and is one of RV(problems).
  - Changes nothing, runs no statement that writes; check mode returns the same facts.
extends_documentation_fragment:
  - lamassuiot.postgres.connection
options:
  database:
    description: The unified database.
    type: str
    default: lamassu
  services:
    description: The services; each has a legacy database C(<source_prefix><service>) and a schema C(<service>).
    type: list
    elements: str
    default: [ca, devicemanager, dmsmanager, alerts, va, kms]
  source_prefix:
    description: Prefix of the legacy database names (empty for a standard Lamassu installation).
    type: str
    default: ""
  migrations_path:
    description:
      - Directory of the managed host with one sub-directory of goose migration files per service, as in a Lamassu
        checkout's C(engines/storage/postgres/migrations) (other entries such as C(helpers/) are ignored), or the
        checkout root itself.
      - When given, pending migrations are listed per service, a pending Go migration without a Python port is a
        problem, and a copied service with nothing pending is V(migrated).
    type: path
  migration_files:
    description:
      - The files of a migrations directory that is not on the managed host (the Ansible controller's), as
        C(<service>/<file name>) paths relative to it; used like O(migrations_path) without reading the files.
      - The C(preflight) role lists C(lamassu_migrations_dir) on the controller and passes it here.
    type: list
    elements: str
  disk_margin:
    description:
      - The free space of the data directory must be at least the size of the legacy databases still to copy
        times this factor.
      - Checked only when the server runs on the managed host (socket, C(localhost), loopback address) and the
        login role may read C(data_directory); otherwise a warning says why it was not checked.
    type: float
    default: 1.5
  if_target_exists:
    description:
      - How the copy will treat a service schema that holds objects and is not a recorded copy.
      - With V(fail) such a schema is a problem; with V(replace) (the copy will replace it) a warning.
    type: str
    default: fail
    choices: [fail, replace]
  accept_source_changes:
    description:
      - Whether RV(cleanup) may drop a legacy database that took writes after its copy (those writes are lost).
      - When false such a service is one of the C(blockers) of RV(cleanup).
    type: bool
    default: false
    version_added: 0.1.0
  proxy_check:
    description:
      - Report a connection whose TCP port differs from the server's own C(port) setting as a problem (a pooler
        such as PgBouncer, or a proxy, in between; the copy needs a direct connection to the primary).
      - Set V(false) when that port is only a plain port mapping to the server itself (e.g. C(docker -p 5433:5432)).
      - pgpool-II (which answers C(SHOW pool_version)) and a standby (C(pg_is_in_recovery())) are problems always.
    type: bool
    default: true
    version_added: 0.1.0
  allow_missing:
    description:
      - Whether the migrate step will apply pending migrations older than a schema's current version (the
        C(allow_missing) of M(lamassuiot.postgres.postgres_lamassu_migrate)). When false such migrations are a
        problem, since goose refuses them.
    type: bool
    default: false
    version_added: 0.1.0
  service_role:
    description:
      - The login role of the services (the one in each service's own config file, the Helm chart's
        C(postgres.username)) - one role name for every service, or a mapping of service to role name.
      - Services left out are read from the server - the owner of the goose table of the legacy database (the
        migration tool creates it as the services' role), else the owner of the legacy database; once that database
        is gone, the same of the service's schema.
      - It names the user of each service's C(dsn) in RV(services) and is listed in RV(service_roles).
    type: raw
    version_added: 0.1.0
  plan:
    description:
      - What the run asks for, from which RV(plan) is decided - the steps of C(upgrade.yml), its copies in the
        foreground and in the background, the reading its report reuses. The action plugin fills in O(plan.host)
        and O(plan.async_jobs).
    type: dict
    default: {}
    version_added: 0.1.0
    suboptions:
      host:
        description: The inventory name of the host, part of each progress file's name.
        type: str
        default: localhost
      cutover_target:
        description: The cutover's target (C(cutover_target)); anything but V(none) writes files, so the host is not done.
        type: str
        default: none
      start_services:
        description: Whether the run starts the services (C(lamassu_start_services)); the host is then not done.
        type: bool
        default: false
      login_check:
        description: Whether the run logs in as each service after the cutover (C(lamassu_login_check)).
        type: bool
        default: true
      copy_parallel:
        description: Every copy in the background at once (C(db_to_schema_parallel)).
        type: bool
        default: false
      async_threshold_mb:
        description: Copies of legacy databases larger than this many MB run in the background (C(db_to_schema_async_threshold_mb)).
        type: float
        default: 512
      async_jobs:
        description: Whether Ansible can run async jobs on the host (RV(host_access)); without, every copy runs in the foreground.
        type: bool
        default: true
      async_seconds:
        description: Ansible's async limit of the copies (C(db_to_schema_async)); 0 - none in the foreground, a day in the background.
        type: int
        default: 0
      progress_dir:
        description: Directory on the host of the progress files of the copies in the background (C(db_to_schema_progress_dir)).
        type: str
        default: ~/.ansible_async
      cutover_source_prefix:
        description: The legacy prefix the cutover reads; the report reuses the cutover's reading when it equals O(plan.report_source_prefix).
        type: str
        default: ""
      report_source_prefix:
        description: The legacy prefix the report reads.
        type: str
        default: ""
      controller_problems:
        description: Problems found on the controller (the migrations tree, the report directory), added to the C(problems) of RV(plan).
        type: list
        elements: str
        default: []
      tls_missing:
        description: The connection's TLS files missing on the host, option name to path, added to the C(problems) of RV(plan).
        type: dict
        default: {}
      move_mode:
        description:
          - How the legacy databases are copied (C(lamassu_move_mode)). V(offline) - with the services stopped for the
            whole copy (steps C(stop), C(copy)). V(online) - while they run, from a logical replication slot's
            snapshot, then the slot's changes are applied and the services are stopped only for the switch (steps
            C(live), C(stop), C(switch)).
          - With V(online) and services still to copy, each of the C(problems) of RV(online) is a problem of RV(plan)
            too, so the preflight stops before any change, naming the fix.
        type: str
        default: offline
        choices: [offline, online]
        version_added: 0.1.0
attributes:
  action:
    description:
      - An action plugin first asks, when Ansible becomes an unprivileged user on the host (C(become_user=postgres)),
        whether the host can take Ansible's files for that user (C(setfacl), or a root login); without that and
        without pipelining the task fails naming both fixes, before any module runs. See RV(host_access).
    support: full
  check_mode:
    description: Reads the same facts; the module never changes anything.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
notes:
  - Row counts of tables are the planner's estimates (C(pg_class.reltuples)); 0 before the first C(ANALYZE).
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Read the state of the Lamassu databases
  lamassuiot.postgres.postgres_lamassu_info:
  register: lamassu_info

- name: Stop when something would block the upgrade
  ansible.builtin.assert:
    that: lamassu_info.ready
    fail_msg: "{{ lamassu_info.problems | join('; ') }}"

- name: Services still waiting for their copy
  ansible.builtin.debug:
    msg: "{{ lamassu_info.phases.legacy }}"

- name: Can the online move run here? (nothing changes; the problems name their fix)
  lamassuiot.postgres.postgres_lamassu_info:
    plan:
      move_mode: online
  register: lamassu_online

- name: Show what keeps the online move from running
  ansible.builtin.debug:
    msg: "{{ lamassu_online.online.problems | map(attribute='msg') | list }}"
  when: not lamassu_online.online.ready

- name: Check pending migrations too (files on the managed host)
  lamassuiot.postgres.postgres_lamassu_info:
    migrations_path: /opt/lamassu/migrations
    disk_margin: 2.0
"""

RETURN = r"""
host_access:
  description:
    - What Ansible's connection can do on the host, from the action plugin.
    - C(async_jobs) is false when Ansible becomes an unprivileged user with pipelining on a host without the C(acl)
      package. Ansible's asynchronous jobs need a file there, so the playbooks then run every copy in the
      foreground. C(note) says so.
  returned: always
  type: dict
  sample: {become_user: postgres, pipelining: true, files_shared: false, modules_run: true, async_jobs: false, note: "..."}
server:
  description: The server and the login role.
  returned: always
  type: dict
  contains:
    version:
      description: C(server_version).
      type: str
    version_num:
      description: C(server_version_num).
      type: int
    encoding:
      description: Encoding of the maintenance database.
      type: str
    max_connections:
      description: C(max_connections).
      type: int
    data_directory:
      description: C(data_directory), null when the login role may not read it.
      type: str
    login_user:
      description: The login role.
      type: str
    superuser:
      description: Whether the login role is a superuser.
      type: bool
    createdb:
      description: Whether the login role has CREATEDB.
      type: bool
    in_recovery:
      description: Whether the server is a standby (C(pg_is_in_recovery())).
      type: bool
    listen_port:
      description: The server's own C(port) setting.
      type: int
    connected_port:
      description: The TCP port the connection used; null over a Unix socket.
      type: int
    pooler:
      description: The connection pooler that answered instead of PostgreSQL (pgpool-II), or null.
      type: str
  sample: {version: "15.8", version_num: 150008, encoding: UTF8, max_connections: 100, data_directory: /var/lib/pg,
           login_user: postgres, superuser: true, createdb: true, in_recovery: false, listen_port: 5432,
           connected_port: 5432, pooler: null}
other_databases:
  description:
    - The other name of the unified database (C(lamassu) or C(pki), upstream's schema branch C(feat/schema-db)),
      when it exists on the server - per database its C(service_schemas) (schema named after a service -> number
      of tables) and C(error) (why it could not be read). Service schemas there are a problem, an empty one a
      warning.
  returned: always
  type: dict
  version_added: 0.1.0
  sample: {pki: {database: pki, service_schemas: {ca: 4}, error: null}}
disk:
  description: The free disk check of the data directory against the legacy databases still to copy.
  returned: always
  type: dict
  sample: {checked: true, path: /var/lib/postgresql/15/main, free_bytes: 52613349376, needed_bytes: 1610612736,
           margin: 1.5, reason: ""}
legacy:
  description:
    - Per service, its legacy database - C(database), C(exists), C(owner), C(owned) (the login role is a member of
      the owner), C(size_bytes), C(goose_version) (highest applied version of C(public.goose_db_version), null
      without that table), C(tables) (list of C(name), C(rows) estimate), C(frozen), C(other_sessions) (other
      sessions connected), C(error) (why it could not be read).
  returned: always
  type: dict
  sample:
    ca: {database: ca, exists: true, owner: admin, owned: false, size_bytes: 9142831, goose_version: 20260520120000,
         tables: [{name: certificates, rows: 325}], frozen: false, other_sessions: [], error: null}
unified:
  description:
    - The unified database - C(database), C(exists), C(can_create) (CREATE privilege of the login role),
      C(journal) (whether the copy journal exists), and C(schemas), per service - C(exists), C(owner),
      C(objects) (names of relations and functions in it), C(tables), C(goose_version), C(freeze_recorded) and
      C(copy), the recorded copy (C(id), C(source_database), C(verify), C(verified), C(goose_version),
      C(started_at), C(finished_at), C(duration_s), C(rows), C(tables)) or null.
    - C(empty_schemas) - the service schemas that exist, hold nothing and are no recorded copy (what
      C(rollback.yml) drops); C(recorded_schemas) - the schemas holding a recorded copy, then those with only a
      recorded freeze of their legacy database (what C(rollback.yml) removes, in that order); C(live_moves) - the
      services whose online move (C(postgres_db_to_schema) O(lamassuiot.postgres.postgres_db_to_schema#module:online))
      is recorded and not switched yet (C(rollback.yml) removes them too, with their slots).
  returned: always
  type: dict
  sample:
    database: lamassu
    exists: true
    can_create: true
    journal: true
    schemas:
      ca: {exists: true, owner: postgres, objects: [certificates, goose_db_version], goose_version: 20260520120000,
           tables: [{name: certificates, rows: 325}], freeze_recorded: true,
           copy: {id: 1, verify: checksum, verified: true, goose_version: 20260520120000, rows: 412, duration_s: 0.8}}
services:
  description:
    - Per service - C(phase), C(legacy_database), C(legacy_goose_version), C(schema_goose_version),
      C(copied_goose_version), C(rows_copied), C(copy_duration_s), C(verified), C(frozen),
      C(source_changed) (the legacy database took writes after its recorded copy, or its statistics cannot prove
      it did not; null without both a copy and the legacy database), C(source_changes) (what changed, per table),
      C(pending_migrations) (null without O(migrations_path)), C(blocked_go_migrations), C(cleanup_blockers)
      (why its legacy database may not be dropped yet, see RV(cleanup)), C(service_role) (the login role of the
      service, see O(service_role)), C(service_role_from) (V(given), V(owner of its goose table) or
      V(owner of its database)), C(migration_check) (the record of the last
      M(lamassuiot.postgres.postgres_lamassu_migrate) run that left nothing pending in the schema, in table
      C(lamassu_migration.migration_checks) - C(tree_digest), C(newest_version), C(goose_version), C(pending),
      C(checked_at) - or null; it decides the phase without O(migrations_path) while C(goose_version) is the
      schema's) and C(dsn) (C(pgx) and C(libpq) connection strings of the service as its own role,
      without password).
  returned: always
  type: dict
  sample:
    ca:
      phase: copied
      service_role: lamassu
      service_role_from: owner of its goose table
      legacy_database: ca
      legacy_goose_version: 20260520120000
      schema_goose_version: 20260520120000
      copied_goose_version: 20260520120000
      rows_copied: 412
      copy_duration_s: 0.8
      verified: true
      frozen: true
      source_changed: false
      source_changes: []
      pending_migrations: null
      blocked_go_migrations: []
      migration_check: null
      cleanup_blockers: []
      dsn: {pgx: "host=db port=5432 user=lamassu dbname=lamassu search_path=ca",
            libpq: "host=db port=5432 user=lamassu dbname=lamassu options='-c search_path=ca'"}
cleanup:
  description:
    - What the C(legacy_cleanup) role may drop, and what blocks it.
    - C(droppable) - the services in phase V(copied) or V(migrated), whose legacy database still exists;
      C(databases) - their legacy databases, in the same order.
    - C(blockers) - every reason not to drop anything yet, one sentence each - a service not copied yet, a recorded
      copy that was not verified, other sessions connected to a legacy database, a legacy database that took writes
      after its copy (unless O(accept_source_changes)); by kind of reason, then in the order of O(services).
  returned: always
  type: dict
  contains:
    droppable:
      description: Services whose legacy database may be dropped once C(blockers) is empty.
      type: list
      elements: str
    databases:
      description: The legacy databases of C(droppable).
      type: list
      elements: str
    blockers:
      description: Why nothing may be dropped yet; empty when the cleanup may go ahead.
      type: list
      elements: str
  sample: {droppable: [ca, va], databases: [ca, va],
           blockers: ["service 'kms' is not copied yet (phase legacy)"]}
cutover:
  description:
    - What keeps the C(cutover) role from pointing the services at their schema.
    - C(blockers) - one sentence per service whose legacy database took writes after its copy (RV(services)
      C(source_changed)), with the remedy; empty with O(accept_source_changes).
  returned: always
  type: dict
  sample: {blockers: []}
phases:
  description: The services in each phase.
  returned: always
  type: dict
  sample: {legacy: [], copied: [ca, va], migrated: [devicemanager], cleaned: []}
service_roles:
  description: The login role of each service (C(service_role) of each service in RV(services)).
  returned: always
  type: dict
  sample: {ca: lamassu, devicemanager: lamassu, dmsmanager: lamassu, alerts: lamassu, va: lamassu, kms: lamassu}
ready:
  description: Whether nothing blocks the upgrade (RV(problems) is empty).
  returned: always
  type: bool
upgrade_done:
  description:
    - Whether an upgrade has nothing left to do on this server - every service V(migrated) (with the migrations
      given, nothing pending) or V(cleaned), no legacy database that took writes after its copy (or whose
      statistics cannot prove it did not), and no problem. C(upgrade.yml) ends a host there (its fast path).
  returned: always
  type: bool
plan:
  description:
    - The plan of this host's upgrade (C(module_utils/upgrade_plan.py)), decided from what was read and O(plan);
      C(upgrade.yml) follows it.
    - C(done) - nothing is left to do (RV(upgrade_done), no problem, nothing to write or start); the fast path.
    - C(steps) - the steps to run, in order, of C(lock), C(preflight), C(live), C(stop), C(copy), C(switch),
      C(migrate), C(cutover), C(login_check), C(start); C(copy) with O(plan.move_mode=offline), C(live) and C(switch)
      (C(lock), C(preflight), C(live), C(stop), C(switch), C(migrate), ...) with O(plan.move_mode=online).
    - C(copies) - C(foreground) and C(background) services, C(progress_files) (service to path on the host) of the
      background ones, C(async_seconds) and C(background_seconds) (Ansible's async limits); online, the live copies.
    - C(switch_copies) - the same for the switch of the online move, every service in the foreground.
    - C(report_reading) - the reading the report reuses instead of reading the host again - V(preflight) (the
      fast path), V(cutover), or V(none).
    - C(problems) - every problem (the host's, with O(plan.move_mode=online) and services still to copy those of
      RV(online), the controller's, missing TLS files), each C(msg) with C(fix) - the module option that gets past it
      (C(option), C(value), C(why)), or null.
  returned: always
  type: dict
  sample:
    done: false
    steps: [lock, preflight, stop, copy, migrate, cutover, login_check]
    copies: {foreground: [ca, kms], background: [devicemanager], async_seconds: 0, background_seconds: 86400,
             progress_files: {devicemanager: ~/.ansible_async/lamassu-db-to-schema-pg1-lamassu-devicemanager.json}}
    report_reading: cutover
    problems: [{msg: "schema 'ca' of database 'lamassu' already holds 3 tables ...",
                fix: {option: if_target_exists, value: replace, why: the copy replaces them}}]
online:
  description:
    - Whether the online move can run on this server for the services still to copy (phase V(legacy), legacy
      database present), read always, whatever O(plan.move_mode) says.
    - C(mode) - O(plan.move_mode). C(ready) - no problem below (also true when nothing is left to copy).
    - C(checks) - the facts read - C(server_version_num), C(wal_level), C(max_replication_slots), C(other_slots)
      (the slots of the server, without the collection's slots of the services to copy, which a re-run resumes),
      C(slots_free), C(slots_needed) (one per service to copy, kept until the switch), C(max_wal_senders),
      C(wal_senders_active), C(login_user), C(superuser), C(replication) (the login role's REPLICATION),
      C(services) (those to copy), C(sources) (per service to copy - C(database), C(can_create) (CREATE on it),
      C(tables), C(not_owned) (tables the login role does not own), C(without_identity) (tables without replica
      identity)), C(publications) (the collection's publications in the legacy databases read, C(database) and
      C(name)).
    - C(problems) - each C(msg) says what is wrong and exactly what to do (the SQL to run; a setting changed with
      C(ALTER SYSTEM) needs a restart of PostgreSQL, itself a short outage); C(fix) is O(plan.move_mode=offline).
      Checked - PostgreSQL 13 to 18, C(wal_level) V(logical), free replication slots for every service to copy,
      a free WAL sender, the login role's REPLICATION (or superuser), CREATE on each legacy database to copy and
      ownership of each of its tables, and a replica identity (a primary key) for each table.
  returned: always
  type: dict
  version_added: 0.1.0
  sample:
    mode: online
    ready: false
    checks: {server_version_num: 150008, wal_level: replica, max_replication_slots: 10, other_slots: [],
             slots_free: 10, slots_needed: 2, max_wal_senders: 10, wal_senders_active: 0, login_user: postgres,
             superuser: true, replication: true, services: [ca, kms],
             sources: {ca: {database: ca, can_create: true, tables: 9, not_owned: [], without_identity: []}},
             publications: []}
    problems:
      - msg: "wal_level is 'replica': the online move decodes the legacy databases' changes from the WAL, which needs
          wal_level = logical; run ALTER SYSTEM SET wal_level = logical (as a superuser) and restart PostgreSQL - ..."
        fix: {option: move_mode, value: offline, why: "the services stay stopped for the whole copy, not only its last seconds"}
replication_slots:
  description:
    - The logical replication slots of the collection's online move on the server (named C(lamassu_move_<target
      database OID>_<schema>)), each with C(slot_name), C(database) (the legacy database it decodes), C(plugin),
      C(active), C(retained_bytes) (WAL the server keeps for it, from its C(restart_lsn) to the current WAL end),
      C(confirmed_flush_lsn), C(wal_status) and C(stale).
    - C(stale) - not in use while no run holds the server-wide upgrade lock - a leftover of an interrupted online
      move that keeps WAL until it is dropped - C(rollback.yml) or C(cleanup.yml) drops it, or by hand
      C(SELECT pg_drop_replication_slot('<slot_name>')); RV(problems) names it with its retained WAL. Under the lock
      (an upgrade's preflight) a slot not in use is a live move to resume, not stale.
  returned: always
  type: list
  elements: dict
  version_added: 0.1.0
  sample:
    - {slot_name: lamassu_move_16384_ca, database: ca, plugin: pgoutput, active: false, retained_bytes: 16777216,
       confirmed_flush_lsn: 0/3000148, wal_status: reserved, stale: true}
problems:
  description: Every condition that stops the upgrade, one sentence each naming the object and the cause.
  returned: always
  type: list
  elements: str
  sample: ["legacy database 'kms' is missing and database 'lamassu' records no copy of it into schema 'kms'"]
notices:
  description: Conditions that do not block the upgrade but deserve a look (also shown as warnings).
  returned: always
  type: list
  elements: str
queries:
  description: Always empty; the module only reads.
  returned: always
  type: list
  elements: str
"""

# First, with nothing before it that needs Python 3.8: an older host Python fails here with a reason.
from ansible_collections.lamassuiot.postgres.plugins.module_utils import python_floor  # noqa: F401  # pylint: disable=unused-import

# isort: split
from ansible_collections.lamassuiot.postgres.plugins.module_utils import service_roles, upgrade_plan
from ansible_collections.lamassuiot.postgres.plugins.module_utils.info import gather
from ansible_collections.lamassuiot.postgres.plugins.module_utils.info_rules import InfoRequest
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import DEFAULT_DATABASE, SERVICES
from ansible_collections.lamassuiot.postgres.plugins.module_utils.module import ModuleContext, run_module


def argument_spec() -> dict:
    return {
        "database": {"type": "str", "default": DEFAULT_DATABASE},
        "services": {"type": "list", "elements": "str", "default": list(SERVICES)},
        "source_prefix": {"type": "str", "default": ""},
        "migrations_path": {"type": "path"},
        "migration_files": {"type": "list", "elements": "str"},
        "disk_margin": {"type": "float", "default": 1.5},
        "if_target_exists": {"type": "str", "default": "fail", "choices": ["fail", "replace"]},
        "accept_source_changes": {"type": "bool", "default": False},
        "proxy_check": {"type": "bool", "default": True},
        "allow_missing": {"type": "bool", "default": False},
        "service_role": {"type": "raw"},
        "plan": {"type": "dict", "default": {}, "options": upgrade_plan.OPTION},
    }


def work(ctx: ModuleContext) -> dict:
    p = ctx.params
    choices = upgrade_plan.RunChoices.from_option(p["plan"])
    request = InfoRequest(
        database=p["database"],
        services=tuple(p["services"]),
        source_prefix=p["source_prefix"],
        migrations_path=p["migrations_path"],
        migration_files=tuple(p["migration_files"]) if p["migration_files"] is not None else None,
        disk_margin=p["disk_margin"],
        if_target_exists=p["if_target_exists"],
        accept_source_changes=p["accept_source_changes"],
        proxy_check=p["proxy_check"],
        allow_missing=p["allow_missing"],
        service_roles=service_roles.overrides(p["service_role"], tuple(p["services"])),
        move_mode=choices.move_mode,
    )
    result = gather(ctx.connection, request)
    migrations_given = request.migrations_path is not None or request.migration_files is not None
    result["plan"] = upgrade_plan.plan(result, choices, ctx.check_mode, migrations_given, request.database)
    for notice in result["notices"]:
        ctx.warn(notice)
    return result


def main() -> None:
    run_module(argument_spec(), work, mutually_exclusive=[("migrations_path", "migration_files")])


if __name__ == "__main__":
    main()
