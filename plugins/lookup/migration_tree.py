# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: migration_tree
short_description: The service folders of a Lamassu migrations tree on the controller
version_added: 0.1.0
description:
  - Reads a migrations tree laid out like a checkout of C(lamassuiot/lamassuiot), on the controller.
  - The term is the checkout root or its C(engines/storage/postgres/migrations) folder.
  - The services of the run that have a folder are the ones to migrate; other entries of the folder (C(helpers/),
    C(gomigrations.go), C(db-to-schema.md)) are ignored; services without a folder are listed in C(missing).
  - Never fails on a bad path; the reason is in C(error), so that preflight can report it with the other problems.
options:
  _terms:
    description: The migrations directory (one path).
    required: true
  services:
    description: The services of the run.
    type: list
    elements: str
    required: true
author:
  - Lamassu IoT contributors (@lamassuiot)
"""

EXAMPLES = r"""
- name: Read a checkout's migrations tree
  ansible.builtin.set_fact:
    tree: "{{ lookup('lamassuiot.postgres.migration_tree', '/src/lamassuiot', services=['ca', 'kms']) }}"
"""

RETURN = r"""
_raw:
  description: One dictionary.
  type: list
  elements: dict
  contains:
    root:
      description: The folder holding the service folders (null when O(_terms) is not usable).
      type: str
    services:
      description: Services of the run that have a folder, in the order given.
      type: list
      elements: str
    files:
      description: C(<service>/<file name>) of every file in those folders.
      type: list
      elements: str
    missing:
      description: Services of the run without a folder.
      type: list
      elements: str
    ignored:
      description: Entries of the folder that are not services of the run.
      type: list
      elements: str
    missing_message:
      description: One message naming the services of the run without a folder, or null.
      type: str
    error:
      description: Why the tree cannot be read, or null.
      type: str
    problem:
      description: What stops the upgrade about the tree - C(error), or no folder of any service of the run - or null.
      type: str
"""


# Ansible wants the documentation first.
from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput  # noqa: E402
from ansible_collections.lamassuiot.postgres.plugins.module_utils.migration_tree import (  # noqa: E402
    MigrationTree,
    missing_message,
    read_tree,
    tree_problem,
)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleError("lamassuiot.postgres.migration_tree takes exactly one path")
        services = [str(s) for s in self.get_option("services")]
        try:
            tree = read_tree(str(terms[0]), services)
        except InvalidInput as exc:
            empty = MigrationTree(root=None).as_dict()
            return [{**empty, "error": str(exc), "problem": str(exc), "missing_message": None}]
        problem = tree_problem(tree, services)
        return [{**tree.as_dict(), "error": None, "problem": problem, "missing_message": missing_message(tree)}]
