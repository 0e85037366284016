#!/usr/bin/python
# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: postgres_db_to_schema
short_description: Copy one database's schema into a schema of another database, atomically and verified
version_added: 0.1.0
description:
  - Copies the structure (types, sequences, tables, columns, defaults, identity, constraints, indexes, views,
    comments, owners and grants), the data (streamed with C(COPY) between two connections, never a whole table
    in memory) and the sequence positions of O(source_schema) of O(source_database) into O(target_schema) of
    O(target_database) on the same server, including the goose version table.
  - All tables are read from one consistent snapshot of the source, also with several O(jobs).
  - The copy is built in a staging schema, verified against the source (O(verify)), then renamed to
    O(target_schema) in one transaction together with its journal row; an interrupted run leaves nothing under
    the target name and the next run drops its leftovers and completes the job.
  - Each published copy is recorded in schema C(lamassu_migration) of the target database; a re-run after a
    published copy changes nothing and reads no data.
  - Source objects the copy does not reproduce (triggers, functions, policies, rules, partitioned or inherited
    tables, foreign tables, materialized views, range types, extended statistics, default privileges, large
    objects) make the module fail before anything changes, naming them.
  - Two runs on the same target schema exclude each other with an advisory lock; the second fails at once.
extends_documentation_fragment:
  - lamassuiot.postgres.connection
options:
  source_database:
    description:
      - Database to copy from, for example C(ca).
      - One of O(source_database) and O(services) is required.
    type: str
  services:
    description:
      - Several copies in one run, one after the other, in the order given - database C(<source_prefix><service>)
        into schema C(<service>) of O(target_database) for each service, every other option shared.
      - Every copy is checked before the first starts. The first failure stops the run; the copies before it
        stay published (each copy is atomic on its own) and the ones after it are not started.
      - The result of each copy (the returns of the single form, with C(schema)) is in RV(results); the top-level
        RV(source), RV(target), RV(tables), RV(dsn) and RV(plan) are not returned.
      - Mutually exclusive with O(source_database), O(target_schema) and O(progress_file).
    type: list
    elements: str
  source_prefix:
    description: With O(services), the prefix of the legacy database names (empty for a standard Lamassu).
    type: str
    default: ""
  source_schema:
    description: Schema of O(source_database) to copy.
    type: str
    default: public
  target_database:
    description: Database to copy into; it must exist (M(lamassuiot.postgres.postgres_lamassu_schema) makes it).
    type: str
    default: lamassu
  target_schema:
    description:
      - Schema to create in O(target_database). Defaults to the name of O(source_database).
      - An existing empty schema is replaced by the copy, keeping its comment; its owner and grants are those of
        the source schema (O(owner)).
    type: str
  owner:
    description:
      - Owner of the published schema.
      - Defaults to the owner of O(source_schema) in the source database, where C(pg_database_owner) (the owner
        of schema C(public) on PostgreSQL 15 and newer) becomes the owner of the source database; any other owner
        stays as in the source.
      - The schema's grants are always those of the source schema, with grants to C(pg_database_owner) made to
        the owner of the source database (so C(USAGE) for C(PUBLIC) comes along).
      - Owners of the objects in the schema stay those of the source.
      - A role that does not exist on the server fails the run before anything changes.
    type: str
    version_added: 0.1.0
  service_role:
    description:
      - The login role of the service (the Helm chart's C(postgres.username)), which gets what it lacks of
        C(CONNECT) and C(CREATE) on O(target_database) and C(USAGE) and C(CREATE) on the published schema, each
        granted only when the role does not hold it yet (owners and superusers need nothing).
      - C(CREATE) on the database is what Lamassu's migration tool checks first (C(CREATE SCHEMA IF NOT EXISTS
        <service>)); the database gets grants, not a new owner, since the services share it.
      - One role name, or a mapping of service (target schema) to role name, for example with O(services); a
        mapping may name any Lamassu service besides those of the run, another name is an error. Services it
        does not name are read as when it is unset.
      - Defaults to the owner of the source's goose table, else the owner of the source database.
      - Also on a re-run over a recorded copy, which then grants what is missing (a copy made by an older
        version) and reports a change.
      - A role that does not exist on the server fails the run before anything changes.
    type: raw
    version_added: 0.1.0
  state:
    description:
      - V(present) copies.
      - V(absent) drops O(target_schema) when the journal records it as a copy of this source made by this module
        (anything else is refused), drops leftovers of an interrupted run, and lifts the freeze of the source.
      - V(absent) refuses, changing nothing, when the source database was dropped (the schema holds the only copy),
        and, unless O(discard_changes), when the schema changed since the copy (tables added or gone, row counts,
        and row checksums when the copy was made with O(verify=checksum)), naming the changes.
    type: str
    default: present
    choices: [present, absent]
  jobs:
    description:
      - Copy workers, each with its own pair of connections, all reading one snapshot of the source.
      - Tables are taken largest first; on PostgreSQL 14 and later a table of 32 MB or more is split into page
        ranges that all workers copy at once.
    type: int
    default: 2
  verify:
    description:
      - How the copy is checked against the source before it is published.
      - V(count) compares the rows read from the snapshot with the rows of each copied table.
      - V(checksum) also compares an order-independent checksum of every row's content, computed by the server
        on both sides.
    type: str
    default: checksum
    choices: [none, count, checksum]
  freeze_source:
    description:
      - Before copying, set C(default_transaction_read_only) on O(source_database) and terminate its other
        sessions, so that writes of every other session fail from then on; the freeze outlives the run and is
        lifted by O(state=absent).
      - A session that explicitly switches to read-write (C(SET transaction_read_only = off)) or a superuser can
        still write; applications do not do that.
    type: bool
    default: false
  online:
    description:
      - The online move, for a copy made while the services keep writing to the source
        (C(docs/db_to_schema.md), "Online move").
      - V(live) makes a publication of the source's tables and a logical replication slot (plugin C(pgoutput); the
        server needs C(wal_level=logical) and the login role REPLICATION), copies from the snapshot the slot
        exports (verified against it like any copy), builds constraints and indexes, then applies the changes the
        slot decoded since, in commit order, one source transaction as one target transaction. Nothing is
        published. A re-run finds the live copy and applies what came since; a copy killed before it was made is
        started again.
      - V(switch) is the short window, with the services stopped - it freezes the source (as O(freeze_source)),
        applies the rest up to the source's WAL position after the freeze, refuses when the source's structure
        changed during the live phase, compares the rows changed since the snapshot and every table's row count,
        sets the sequences, publishes, and drops the slot and the publication. It needs a live copy.
      - Every way out drops the slot and the publication; a failure drops the live copy too. O(state=absent)
        drops what a killed move left.
      - V(off) is the offline copy.
    type: str
    default: "off"
    choices: ["off", live, switch]
  if_target_exists:
    description:
      - What to do when O(target_schema) exists, holds objects and is not a recorded copy of this source.
      - V(fail) names the objects and changes nothing; V(replace) drops that schema when the copy is published.
      - V(replace) also copies again over a recorded copy whose source changed since (RV(source_changed)); that
        is refused, changing nothing, when the recorded copy itself changed since, unless O(discard_changes).
    type: str
    default: fail
    choices: [fail, replace]
  drop_source:
    description:
      - After a verified copy (O(verify) not V(none)), drop O(source_database). Refused while other sessions are
        connected to it, naming them; nothing to do once it is gone.
      - Refused, keeping the database, when it changed after its copy (RV(source_changed)), unless
        O(accept_source_changes).
    type: bool
    default: false
  discard_changes:
    description:
      - With O(state=absent), remove the recorded copy even when it changed since the copy (rows written or
        migrations applied to it); those changes are lost, since the source database holds the data of the time
        of the copy.
      - With O(if_target_exists=replace), copy again over a recorded copy that changed since it was made.
      - Only with O(state=absent) or O(if_target_exists=replace).
    type: bool
    default: false
  accept_source_changes:
    description:
      - With O(drop_source), drop the source database even when it took writes after its copy
        (RV(source_changed)); those writes are lost. Without it such a drop is refused.
    type: bool
    default: false
  progress_file:
    description:
      - Path on the managed host of a small JSON file that the copy keeps up to date while it runs, for a run
        started as an asynchronous job (C(async) with C(poll) 0) to be watched, as the role C(db_to_schema) does
        with M(lamassuiot.postgres.postgres_db_to_schema_wait).
      - Keys C(tables_done), C(tables_total), C(bytes_done), C(bytes_total) (source sizes of the tables),
        C(phase) (C(plan), C(snapshot), C(ddl), C(data), ..., at the end C(done) or C(failed); RV(phase) of a
        failed run tells where it stopped) and C(elapsed_s). Written when the run starts, when the tables to copy are known, at each phase, after each
        table and at the end; each write replaces the file atomically, and the run leaves it in place.
      - A missing directory is created (mode 0700); a path that cannot be written fails the run before anything
        changes. Ignored in check mode.
    type: path
attributes:
  check_mode:
    description: Returns the plan in RV(plan) (tables with estimated rows and sizes, objects to create, extensions
      needed) and in RV(queries) the statements the real run would execute (leftovers dropped, journal, freeze,
      structure, the C(COPY) of each table, indexes, publish, drop of the source; C(DROP SCHEMA) for
      O(state=absent)); writes nothing. When O(target_database) does not exist yet, the plan is made against C(template1),
      which the database created by P(lamassuiot.postgres.postgres_lamassu_schema#module) will copy.
    support: full
  diff_mode:
    description: Returns in C(diff) the copy and its source before and after the run (C(copied), C(source_frozen),
      C(source_dropped)); with O(services), under C(schemas), one entry per target schema. In check mode, C(after)
      is what the real run would leave.
    support: full
notes:
  - Tablespaces, security labels and the grantor of grants are not reproduced; grants are made by the owner.
  - Sequence positions are read while copying; without O(freeze_source) they may be ahead of the copied rows,
    never behind.
  - See C(docs/db_to_schema.md) of the collection for the phases, the snapshot, the verification and the journal.
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Copy the ca database into schema ca of lamassu
  lamassuiot.postgres.postgres_db_to_schema:
    source_database: ca
    target_database: lamassu

- name: Copy with a freeze of the source, then drop the source once verified
  lamassuiot.postgres.postgres_db_to_schema:
    source_database: devicemanager
    freeze_source: true
    drop_source: true

- name: Replace the empty tables a newer Lamassu created in schema kms
  lamassuiot.postgres.postgres_db_to_schema:
    source_database: kms
    if_target_exists: replace

- name: Copy the six legacy databases into their schemas in one run, frozen, largest tables first within each
  lamassuiot.postgres.postgres_db_to_schema:
    services: [ca, devicemanager, dmsmanager, alerts, va, kms]
    target_database: lamassu
    freeze_source: true
  register: copies

- name: Copy two services whose login roles differ, the schemas owned by lamassu_admin
  lamassuiot.postgres.postgres_db_to_schema:
    services: [ca, kms]
    owner: lamassu_admin
    service_role: {ca: lamassu_ca, kms: lamassu_kms}

- name: Remove the copy and lift the freeze (rollback)
  lamassuiot.postgres.postgres_db_to_schema:
    source_database: ca
    state: absent
"""

RETURN = r"""
source:
  description: The source, its goose version and whether it is frozen or dropped.
  returned: without O(services) (there, in each entry of RV(results))
  type: dict
  contains:
    database:
      description: Source database.
      type: str
    schema:
      description: Source schema.
      type: str
    goose_version:
      description: Highest applied version of the source's goose table, or null without one.
      type: int
    frozen:
      description: Whether the source database is frozen by this module.
      type: bool
    dropped:
      description: Whether the source database is gone (dropped by this run or before).
      type: bool
  sample: {database: ca, schema: public, goose_version: 20260520120000, frozen: false, dropped: false}
target:
  description: Where the copy is.
  returned: without O(services) (there, in each entry of RV(results))
  type: dict
  sample: {database: lamassu, schema: ca}
tables:
  description: Per table, rows, source size in bytes, seconds spent and whether it was verified; in check mode
    the estimates.
  returned: without O(services) (there, in each entry of RV(results))
  type: list
  elements: dict
  sample: [{name: certificates, rows: 1200, bytes: 3358720, seconds: 0.41, verified: true}]
online:
  description:
    - Where the online move is (O(online)) and what this run applied.
    - C(phase) is C(live) once the copy is made (C(copying) before); C(applied_lsn) the end of the last source
      transaction applied; C(applied) this run's C(transactions), C(changes), C(skipped) (applied before a
      kill), C(seconds) and C(lag_bytes) (the source's WAL written since, not applied yet); C(rows_checked) the
      rows the switch compared; C(published) true after the switch.
  returned: when O(online) is V(live) or V(switch) and a copy was made or applied (without O(services); there,
    in each entry of RV(results))
  type: dict
  sample:
    mode: live
    slot: lamassu_move_16384_ca
    publication: lamassu_move_16384_ca
    phase: live
    consistent_lsn: 0/1A2B3C8
    applied_lsn: 0/1B00F10
    transactions: 1520
    changes: 3040
    applied: {transactions: 1520, changes: 3040, skipped: 0, seconds: 1.9, applied_lsn: 0/1B00F10, lag_bytes: 0}
    rows_checked: null
    published: false
duration_s:
  description: Wall time of the run in seconds.
  returned: always
  type: float
service_role:
  description: The login role of the service (O(service_role)), which the copy gave what it lacked; null when it
    cannot be told (a recorded copy without goose table whose source database is gone).
  returned: without O(services) (there, in each entry of RV(results))
  type: str
  version_added: 0.1.0
  sample: lamassu_app
dsn:
  description: Connection strings for the service, as its service role (RV(service_role)), without password.
  returned: without O(services) (there, in each entry of RV(results))
  type: dict
  contains:
    pgx:
      description: pgx form, with C(search_path) as a keyword.
      type: str
    libpq:
      description: libpq form, with C(options='-c search_path=...').
      type: str
  sample:
    pgx: "host=db port=5432 user=lamassu_app dbname=lamassu search_path=ca"
    libpq: "host=db port=5432 user=lamassu_app dbname=lamassu options='-c search_path=ca'"
source_changed:
  description:
    - Whether the source database took writes (or changed its tables) after the recorded copy, from the server's
      statistics counters recorded at the copy's snapshot (C(pg_stat_user_tables) C(n_tup_ins), C(n_tup_upd),
      C(n_tup_del), the tables' file nodes and columns, the statistics reset time).
    - V(true) also when the statistics cannot prove that nothing changed (they were reset, or the copy predates
      this check); V(false) for a copy made by this run; null when the source database is gone.
    - A re-run that finds it V(true) warns, naming the tables, and changes nothing unless
      O(if_target_exists=replace).
  returned: without O(services) (there, in each entry of RV(results))
  type: bool
source_changes:
  description: What changed in the source since the recorded copy, per table; empty when nothing did.
  returned: without O(services) (there, in each entry of RV(results))
  type: list
  elements: str
  sample: ["table certificates: 3 inserts, 1 updates"]
plan:
  description: In check mode, what a run would do.
  returned: check mode, when a copy is needed
  type: dict
  sample:
    staging_schema: lamassu_stage_ca
    tables: [{name: certificates, estimated_rows: 1200, bytes: 3358720}]
    objects: [table certificates, primary key certificates_pkey on certificates]
    extensions: []
    replace_target: false
    target_exists: true
    target_database_exists: true
    freeze_source: false
    drop_source: false
recorded:
  description: The journal row of the copy when it was already published before this run.
  returned: when the copy was already recorded
  type: dict
  sample: {id: 3, finished_at: "2026-01-01 10:00:00+00", verify: checksum}
before:
  description: The copy and its source as the run found them, the C(before) of the diff.
  returned: when the run read them (without O(services); there, in each entry of RV(results))
  type: dict
  sample: {copied: false, source_frozen: false, source_dropped: false}
phase:
  description: The phase in which a failed run stopped (see C(plugins/module_utils/dbcopy/phases.py)).
  returned: failure
  type: str
  sample: data
results:
  description:
    - With O(services), one entry per copy run, in order, each with C(schema) (the target schema) and the returns
      of the single form.
    - On failure the last entry is the copy that failed, with C(failed=true) and C(msg); the copies after it are
      not listed.
  returned: with O(services)
  type: list
  elements: dict
  sample: [{schema: ca, changed: true, source: {database: ca, schema: public, goose_version: 20250123125500},
            target: {database: lamassu, schema: ca}, tables: [], duration_s: 1.2, queries: []}]
queries:
  description: SQL statements run (or that would run); never data, never a password.
  returned: always
  type: list
  elements: str
fix:
  description:
    - "When the copy is refused and a module option gets past the refusal: O(if_target_exists=replace) (a target
      that holds only the empty tables of a newer Lamassu, or a source that took writes after its copy) or
      O(discard_changes=true)."
    - C(option), C(value) and C(why) (what setting it does); the report shows the playbook variable that sets it.
  returned: on failure, when an option gets past it
  type: dict
  sample: {option: discard_changes, value: true, why: removes the schema anyway, losing its changes since the copy}
"""

# First, with nothing before it that needs Python 3.8: an older host Python fails here with a reason.
from ansible_collections.lamassuiot.postgres.plugins.module_utils import python_floor  # noqa: F401  # pylint: disable=unused-import

# isort: split
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.command import run_module_params
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.request import ONLINE_CHOICES
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.verify import VERIFY_MODES
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import DEFAULT_DATABASE
from ansible_collections.lamassuiot.postgres.plugins.module_utils.module import ModuleContext, run_module


def argument_spec() -> dict:
    return {
        "source_database": {"type": "str"},
        "services": {"type": "list", "elements": "str"},
        "source_prefix": {"type": "str", "default": ""},
        "source_schema": {"type": "str", "default": "public"},
        "target_database": {"type": "str", "default": DEFAULT_DATABASE},
        "target_schema": {"type": "str"},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        "jobs": {"type": "int", "default": 2},
        "verify": {"type": "str", "default": "checksum", "choices": list(VERIFY_MODES)},
        "freeze_source": {"type": "bool", "default": False},
        "if_target_exists": {"type": "str", "default": "fail", "choices": ["fail", "replace"]},
        "drop_source": {"type": "bool", "default": False},
        "discard_changes": {"type": "bool", "default": False},
        "accept_source_changes": {"type": "bool", "default": False},
        "progress_file": {"type": "path"},
        "owner": {"type": "str"},
        "service_role": {"type": "raw"},
        "online": {"type": "str", "default": "off", "choices": list(ONLINE_CHOICES)},
    }


def work(ctx: ModuleContext) -> dict:
    return run_module_params(ctx.connection, ctx.params, ctx.check_mode, ctx.diff, log=ctx.log)


def main() -> None:
    run_module(
        argument_spec(),
        work,
        required_one_of=[("source_database", "services")],
        mutually_exclusive=[
            ("source_database", "services"),
            ("target_schema", "services"),
            ("progress_file", "services"),
        ],
    )


if __name__ == "__main__":
    main()
