#!/usr/bin/python
# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: lamassu_service_config
short_description: Point a Lamassu service's own config file at the unified database
version_added: 0.1.0
description:
  - Edits the top-level C(storage) block of one Lamassu service config file (the file a service reads from
    C(/etc/lamassuiot/config.yml) or C($LAMASSU_CONFIG_FILE)) so that it holds C(provider=postgres), the database
    (under the key O(database_key)) and, only when they are given, O(hostname), O(port) and O(username).
  - Changes only those keys. Every other line stays as it was, with its comments, quoting, indentation and line
    endings, and so do the mode and the owner of the file. The password is never written; a C(password) line
    stays untouched. So the login of the service stays its own (its C(username) with its C(password)) unless
    O(username) names another role, whose password you then set yourself.
  - The edit is made on lines and proved before anything is written; the edited text must read back (PyYAML)
    as the original document with only those keys changed. A file that is not a YAML mapping, or whose
    C(storage) is not a mapping written as a block, is refused with the reason and left alone.
  - Before its first change the file is kept as C(<path><backup_suffix>); O(state=restored) puts that copy back
    and removes it.
  - Takes no database connection; it is not in the action group C(lamassuiot.postgres.all).
options:
  path:
    description: The service's config file on the managed host; it must exist.
    type: path
    required: true
  state:
    description:
      - V(present) writes the storage settings.
      - V(restored) puts back the file as it was before the first change (its bytes, mode and owner) and removes
        the backup; without a backup it does nothing.
    type: str
    default: present
    choices: [present, restored]
  hostname:
    description:
      - Host name the service uses to reach PostgreSQL (C(storage.hostname)).
      - Written only when given; without it the service keeps its own.
    type: str
  port:
    description:
      - Port of the server (C(storage.port)), written as an integer.
      - Written only when given; without it the service keeps its own.
    type: int
  username:
    description:
      - Login role of the service (C(storage.username)).
      - Written only when given; without it the service keeps its own login, which goes with its own C(password)
        line. A new role needs its password set by hand (the module never writes one).
    type: str
  database:
    description:
      - The unified database, written under O(database_key).
      - V(null) writes no database; then at least one of O(hostname), O(port), O(username) must be given.
    type: str
    default: lamassu
  database_key:
    description:
      - Key of the storage block that names the unified database.
      - V(database) is the name this collection's plan gives the setting; no Lamassu release reads a database name
        from its config yet (upstream's schema branch fixes C(dbname=pki) in code).
    type: str
    default: database
  backup_suffix:
    description: Suffix of the copy of the file as it was before the first change.
    type: str
    default: .pre-lamassu
attributes:
  check_mode:
    description: Reports the change and its diff; writes neither the file nor the backup.
    support: full
  diff_mode:
    description: The C(storage) block before and after, the password hidden.
    support: full
requirements:
  - PyYAML on the managed host
notes:
  - A file shared by several services (one config for all) can be given once per service; only the first edit
    changes it.
  - Keeping the owner of a file that belongs to another user needs C(become).
seealso:
  - name: Lamassu service configuration
    description: C(core/pkg/config/loader.go) and C(engines/storage/postgres/config/config.go) of lamassuiot/lamassuiot.
    link: https://github.com/lamassuiot/lamassuiot
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Point the CA service at the unified database, keeping its host, port and login
  lamassuiot.postgres.lamassu_service_config:
    path: /etc/lamassuiot/ca/config.yml
    database: lamassu

- name: Point the CA service at the unified database on another server
  lamassuiot.postgres.lamassu_service_config:
    path: /etc/lamassuiot/ca/config.yml
    hostname: db1.example.com
    port: 5432
    database: lamassu

- name: Put the file back as it was before the cutover
  lamassuiot.postgres.lamassu_service_config:
    path: /etc/lamassuiot/ca/config.yml
    state: restored
"""

RETURN = r"""
path:
  description: The config file.
  returned: always
  type: str
  sample: /etc/lamassuiot/ca/config.yml
backup:
  description: The copy of the file as it was before the first change (V(null) when there is none).
  returned: always
  type: str
  sample: /etc/lamassuiot/ca/config.yml.pre-lamassu
backup_created:
  description: Whether this run made the backup (or would, in check mode).
  returned: when state is present
  type: bool
changed_keys:
  description: The storage keys added or given a new value (or that would be, in check mode).
  returned: when state is present
  type: list
  elements: str
  sample: [database]
storage:
  description: The storage settings the module wrote or found already set (the ones given, and C(provider)).
  returned: when state is present
  type: dict
  sample: {provider: postgres, hostname: db1.example.com, port: 5432, database: lamassu}
restored:
  description: With O(state=restored), whether the content of the file changed (the backup is removed either way).
  returned: when state is restored
  type: bool
"""

# First, with nothing before it that needs Python 3.8: an older host Python fails here with a reason.
from ansible_collections.lamassuiot.postgres.plugins.module_utils import python_floor  # noqa: F401  # pylint: disable=unused-import

# isort: split
from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import LamassuError
from ansible_collections.lamassuiot.postgres.plugins.module_utils.service_config import (
    DEFAULT_BACKUP_SUFFIX,
    DEFAULT_DATABASE_KEY,
    HAS_YAML,
    YAML_IMPORT_ERROR,
    ensure_storage,
    restore,
    storage_settings,
)


def argument_spec() -> dict:
    return {
        "path": {"type": "path", "required": True},
        "state": {"type": "str", "default": "present", "choices": ["present", "restored"]},
        "hostname": {"type": "str"},
        "port": {"type": "int"},
        "username": {"type": "str"},
        "database": {"type": "str", "default": "lamassu"},
        "database_key": {"type": "str", "default": DEFAULT_DATABASE_KEY, "no_log": False},
        "backup_suffix": {"type": "str", "default": DEFAULT_BACKUP_SUFFIX},
    }


def work(params: dict, check_mode: bool) -> dict:
    if params["state"] == "restored":
        return restore(params["path"], params["backup_suffix"], check_mode)
    settings = storage_settings(
        database=params["database"],
        hostname=params["hostname"],
        port=params["port"],
        username=params["username"],
        database_key=params["database_key"],
    )
    return ensure_storage(params["path"], settings, params["backup_suffix"], check_mode)


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR)
    try:
        result = work(module.params, module.check_mode)
    except LamassuError as exc:
        module.fail_json(msg=str(exc), changed=False, **exc.result)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
