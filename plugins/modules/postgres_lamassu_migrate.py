#!/usr/bin/python
# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: postgres_lamassu_migrate
short_description: Run goose migrations on one schema, interchangeably with goose v3
version_added: 0.1.0
description:
  - A goose v3 compatible migration runner for one schema of one database. What goose applied, this
    module reads and continues, and the other way round.
  - The version table is goose's own (its PostgreSQL DDL, a first row for version 0), created inside
    O(schema) together with the schema itself when missing, in one transaction, the first time a
    migration is applied.
  - Files are discovered and SQL files are split into statements exactly as goose does
    (C(-- +goose Up/Down), C(StatementBegin/End), C(NO TRANSACTION), C(ENVSUB ON/OFF)).
  - Applied and pending migrations follow goose's Provider. The current version is the highest applied
    version. C(down) rolls back in insertion order and deletes the version row; version 0 is never
    rolled back. Unapplied files older than the current version are "missing" and refused unless
    O(allow_missing=true).
  - Each migration runs in its own transaction together with its version-row change; a
    C(NO TRANSACTION) migration runs statement by statement and then records its version. A failing
    migration is rolled back, the ones before it stay applied, and the failure names the version,
    the file, the statement number and the server's message while RV(applied) still lists what was done.
  - Migrations run with O(schema) as the only schema on C(search_path), so unqualified names land in
    it, as for a Lamassu service connected with C(search_path=<schema>).
  - The run holds goose's session advisory lock (C(pg_try_advisory_lock(4097083626)), plus
    C(5887940537704921958), the id some goose v3 releases use instead), retried every half second for up
    to five minutes (goose's own bound); then it fails with "another migration is in progress" and
    changes nothing. Check mode and the C(status) and C(version) commands take no lock and change nothing.
  - A file is refused before anything is applied when it is malformed (named with its line), or when it
    is a pending Go migration (C(.go)) without a Python port C(<version>_<name>.py).
  - After C(up), C(up-by-one), C(up-to) or C(redo) leaves nothing pending in a schema, the run records it in table
    C(lamassu_migration.migration_checks) of the database (one row per schema - the sha256 of the schema's migration
    files, names and contents, the newest version of those files, the schema's goose version, 0 pending and the
    time), so that M(lamassuiot.postgres.postgres_lamassu_info) without the migration files still calls the
    service V(migrated). Only in a database that has schema C(lamassu_migration) already (a unified database the
    copy wrote to); the table is created when missing. A record identical to the one stored is not written again;
    a record written is a change and its statements are in RV(queries). When the login role may not read or write
    the table, the run warns and goes on (the migration is done; the status without the files then follows the
    goose version).
extends_documentation_fragment:
  - lamassuiot.postgres.connection
options:
  database:
    description: Database to migrate. It must exist.
    type: str
    default: lamassu
  schema:
    description:
      - Schema that holds the version table, created when missing.
      - While migrations run it is the only schema on C(search_path).
      - Mutually exclusive with O(services).
    type: str
    default: public
  services:
    description:
      - Several schemas in one run, each migrated from its own folder C(<path>/<schema>) (or C(<src>/<schema>)),
        in the order given, under one lock and on one connection.
      - Every schema is read and every file it would run is checked before the first migration of any schema
        runs, so a refused file changes nothing anywhere. Then the schemas run in order and the first failure
        stops the run; the schemas after it are not touched.
      - The results of the schemas are in RV(results) instead of the top-level returns of the single form.
      - Mutually exclusive with O(schema).
    type: list
    elements: str
  path:
    description:
      - Directory of migration files on the managed host, or a tar archive of one (unpacked into a private
        temporary directory that is removed after the run). With O(services), the directory holds one folder per
        schema.
      - C(<version>_<name>.sql) goose SQL migrations.
      - C(<version>_<name>.py) Python migrations, with a function C(up(conn)) and optionally C(down(conn)),
        called with the psycopg2 connection inside the migration's transaction (they must not commit).
      - C(<version>_<name>.go) Go migrations are recognised but never run; a C(.py) of the same version ports one.
      - One of O(path), O(src) and O(archive) is required.
    type: path
  archive:
    description:
      - The migrations as the base64 text of a gzip'd tar archive of the directory (as O(path) would name it).
      - This is how the action sends O(src), inside the module's arguments, with no file transfer, so it also works
        when Ansible becomes an unprivileged user (C(become_user=postgres)) with pipelining on a host without the
        C(acl) package. Give O(src) or O(path) instead.
    type: str
    version_added: 0.1.0
  src:
    description:
      - Like O(path), but a directory on the Ansible controller. With O(services) it may also be a Lamassu
        checkout, whose C(engines/storage/postgres/migrations) folder is used.
      - The action packs the files (with O(services), only the folders of those schemas) into one archive sent in
        O(archive); the module unpacks it into a private temporary directory of the managed host and removes it
        after the run. Paths in the results and messages name the files under O(src).
    type: path
  command:
    description:
      - C(up) applies every pending migration; C(up-by-one) the next one; C(up-to) those up to O(version).
      - C(down) rolls back the last applied migration; C(down-to) rolls back to O(version), excluded;
        C(reset) rolls back every migration; C(redo) rolls back the last applied migration and applies it again.
      - C(status) and C(version) only read.
    type: str
    default: up
    choices: [up, up-by-one, up-to, down, down-to, redo, reset, status, version]
  version:
    description: Target version of O(command=up-to) (at least 1) and O(command=down-to) (at least 0).
    type: int
  table:
    description: Name of the goose version table inside O(schema).
    type: str
    default: goose_db_version
  allow_missing:
    description:
      - Apply missing migrations (never applied, older than the current version) before the new ones,
        as goose's C(--allow-missing). Without it their presence fails the run before anything is applied.
    type: bool
    default: false
  env:
    description:
      - Values for C(-- +goose ENVSUB ON) sections, on top of the environment of the module's process.
      - Substituted values are part of the statements, so they appear in RV(applied) and RV(queries);
        do not pass secrets this way.
    type: dict
    default: {}
  run_as_owner:
    description:
      - Run the migrations as the owner of the version table (C(SET ROLE)) when that is not the login role and the
        login role may take it (a superuser, or a member of it), so that what they create belongs to the service,
        as when Lamassu's migration Job runs them as the services' own role. The version table is then written by
        its owner too.
      - V(false) runs them as the login role. A schema without a version table yet runs them as the login role.
    type: bool
    default: true
    version_added: 0.1.0
attributes:
  action:
    description: An action plugin packs the files of O(src) into O(archive); without O(src) it runs the module.
    support: full
  async:
    description: Without O(src) the module can run as an asynchronous job.
    support: partial
  check_mode:
    description:
      - Computes the plan and returns in RV(applied) each migration it would run with its statements, and in
        RV(queries) every statement; touches nothing, not even the version table (a missing table reads as
        an empty history).
    support: full
  diff_mode:
    description: Shows the schema's version before and after.
    support: full
notes:
  - See C(docs/migrate.md) in the collection for a command by command comparison with goose.
  - When the history is out of order, goose's older API (which Lamassu's own tool uses) reads another current
    version than goose's Provider and this module; C(status) and C(version) then warn.
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Apply every pending migration of the ca service to its schema
  lamassuiot.postgres.postgres_lamassu_migrate:
    database: lamassu
    schema: ca
    path: /opt/lamassu/migrations/ca

- name: Show what would run, statement by statement (nothing is touched)
  lamassuiot.postgres.postgres_lamassu_migrate:
    schema: devicemanager
    path: /opt/lamassu/migrations/devicemanager
  check_mode: true
  register: plan

- name: Migrate every service schema from a Lamassu checkout on the controller, in one run
  lamassuiot.postgres.postgres_lamassu_migrate:
    database: lamassu
    services: [ca, devicemanager, dmsmanager, alerts, va, kms]
    src: "{{ playbook_dir }}/lamassuiot"
  register: migrated

- name: Status of every migration
  lamassuiot.postgres.postgres_lamassu_migrate:
    schema: kms
    path: /opt/lamassu/migrations/kms
    command: status
  register: kms_status

- name: Roll back to version 20250101000000 (excluded)
  lamassuiot.postgres.postgres_lamassu_migrate:
    schema: ca
    path: /opt/lamassu/migrations/ca
    command: down-to
    version: 20250101000000

- name: Apply a hotfix migration older than the current version, with an ENVSUB value
  lamassuiot.postgres.postgres_lamassu_migrate:
    schema: ca
    path: /opt/lamassu/migrations/ca
    allow_missing: true
    env:
      LAMASSU_DOMAIN: pki.example.com
"""

RETURN = r"""
version_before:
  description: Current version (highest applied) before the run; 0 when nothing is applied.
  returned: without O(services) (there, in each entry of RV(results))
  type: int
  sample: 20250123125500
version_after:
  description: Current version after the run (in check mode, the version the run would leave).
  returned: without O(services) (there, in each entry of RV(results))
  type: int
  sample: 20260520120000
failed_migration:
  description:
    - The migration that failed, as goose's C(PartialError.Failed) names it (C(failed) itself is Ansible's flag).
    - C(statement) is the statement that failed, null when a Python migration or the version table update failed;
      C(error) is the server's message.
  returned: failure of a migration
  type: dict
  sample: {version: 20260101000000, name: 20260101000000_broken.sql, direction: up,
           statement: "INSERT INTO no_such_table VALUES (1)", error: "relation \"no_such_table\" does not exist"}
applied:
  description:
    - Migrations run, in order; in check mode those that would run, with their statements and C(duration_ms=0).
    - On failure, the migrations applied before the failing one.
  returned: without O(services) (there, in each entry of RV(results))
  type: list
  elements: dict
  contains:
    version:
      description: Version of the migration.
      type: int
    name:
      description: File name of the migration.
      type: str
    kind:
      description: C(sql) or C(py).
      type: str
    direction:
      description: C(up) or C(down).
      type: str
    statements:
      description: The statements executed (for a Python migration, those it executed through its cursors).
      type: list
      elements: str
    duration_ms:
      description: Time the migration took, in milliseconds.
      type: int
  sample: [{version: 1, name: 00000000000001_init.sql, kind: sql, direction: up, statements: ['CREATE TABLE ...'], duration_ms: 12}]
pending:
  description: Migrations not applied after the run (in check mode, after the planned run).
  returned: without O(services) (there, in each entry of RV(results))
  type: list
  elements: dict
  contains:
    version:
      description: Version of the migration.
      type: int
    name:
      description: File name.
      type: str
    kind:
      description: C(sql), C(py) or C(go).
      type: str
  sample: [{version: 20260520120000, name: 20260520120000_add_column.sql, kind: sql}]
migrations:
  description: Every migration file and every applied version, by version, after the run (the status view).
  returned: without O(services) (there, in each entry of RV(results))
  type: list
  elements: dict
  contains:
    version:
      description: Version.
      type: int
    name:
      description: File name; null for an applied version whose file is gone.
      type: str
    kind:
      description: C(sql), C(py) or C(go); null when the file is gone.
      type: str
    path:
      description: Path of the file on the managed host; null when the file is gone.
      type: str
    applied:
      description: Whether the version is applied.
      type: bool
    applied_at:
      description: Timestamp of the version row (the table's C(tstamp), server time zone); null when not applied.
      type: str
    state:
      description:
        - C(applied); C(pending); C(missing) (never applied and older than the current version, refused
          unless O(allow_missing)); C(gone) (applied, but no file of that version in O(path)).
      type: str
  sample: [{version: 1, name: 00000000000001_init.sql, kind: sql, path: /tmp/m/00000000000001_init.sql,
            applied: true, applied_at: '2026-01-02 03:04:05.678901', state: applied}]
migration_check:
  description:
    - What the run recorded (or, in check mode, would record) in C(lamassu_migration.migration_checks) for the
      schema - C(tree_digest), C(newest_version), C(goose_version), C(pending) (0) - and C(written), false when the
      stored record was the same already.
    - Null when nothing is recorded - a command other than C(up), C(up-by-one), C(up-to) or C(redo), a migration
      still pending, a database without schema C(lamassu_migration), or a role that may not write it (a warning).
  returned: without O(services) (there, in each entry of RV(results))
  type: dict
  sample: {tree_digest: 9f2c..., newest_version: 20260520120000, goose_version: 20260520120000, pending: 0,
           written: true}
path:
  description:
    - The directory the migrations were read from; for an archive, the temporary directory it was unpacked into
      (removed after the run). With O(src), O(src) (with O(services), the folder of service folders in it).
  returned: when the files could be read
  type: str
  sample: /opt/lamassu/migrations/ca
results:
  description:
    - With O(services), one entry per schema run, in order, each with C(schema) and the returns of the single
      form (RV(version_before), RV(version_after), RV(applied), RV(pending), RV(migrations), RV(migration_check),
      RV(queries)).
    - On failure the last entry is the schema that failed, with C(failed=true), C(msg) and, for a failed
      migration, RV(failed_migration); the schemas after it are not listed.
    - The top-level RV(version_before), RV(version_after), RV(applied), RV(pending) and RV(migrations) are not
      returned with O(services).
  returned: with O(services)
  type: list
  elements: dict
  sample: [{schema: ca, version_before: 20250123125500, version_after: 20260520120000, applied: [], pending: [],
            migrations: [], queries: []}]
queries:
  description:
    - Every statement that changed the database, in order, or that would in check mode; version-table
      statements and the write of RV(migration_check) included. Never a password.
  returned: always
  type: list
  elements: str
  sample: ['SET search_path TO "ca"', 'CREATE TABLE certificates (...)', 'INSERT INTO "ca"."goose_db_version" (version_id, is_applied) VALUES (1, true)']
fix:
  description:
    - "When missing (out-of-order) migrations are refused: O(allow_missing=true)."
    - C(option), C(value) and C(why) (what setting it does); the report shows the playbook variable that sets it.
  returned: on failure, when an option gets past it
  type: dict
  sample: {option: allow_missing, value: true, why: applies the missing migrations before the newer ones}
"""

# First, with nothing before it that needs Python 3.8: an older host Python fails here with a reason.
from ansible_collections.lamassuiot.postgres.plugins.module_utils import python_floor  # noqa: F401  # pylint: disable=unused-import

# isort: split
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.command import run_module_params
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.plan import COMMANDS
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import DEFAULT_DATABASE, GOOSE_TABLE
from ansible_collections.lamassuiot.postgres.plugins.module_utils.module import ModuleContext, run_module


def argument_spec() -> dict:
    return {
        "database": {"type": "str", "default": DEFAULT_DATABASE},
        "schema": {"type": "str", "default": "public"},
        "services": {"type": "list", "elements": "str"},
        "path": {"type": "path"},
        "src": {"type": "path"},
        "archive": {"type": "str"},
        "command": {"type": "str", "default": "up", "choices": list(COMMANDS)},
        "version": {"type": "int"},
        "table": {"type": "str", "default": GOOSE_TABLE},
        "allow_missing": {"type": "bool", "default": False},
        "env": {"type": "dict", "default": {}},
        "run_as_owner": {"type": "bool", "default": True},
    }


def work(ctx: ModuleContext) -> dict:
    return run_module_params(ctx.connection, ctx.params, ctx.check_mode, ctx.diff, ctx.warn)


def main() -> None:
    run_module(
        argument_spec(),
        work,
        required_if=[("command", "up-to", ["version"]), ("command", "down-to", ["version"])],
        required_one_of=[("path", "src", "archive")],
        mutually_exclusive=[("path", "src", "archive"), ("schema", "services")],
    )


if __name__ == "__main__":
    main()
