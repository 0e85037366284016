# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place for Lamassu facts: service names and default names."""

from __future__ import annotations

SERVICES: tuple[str, ...] = ("ca", "devicemanager", "dmsmanager", "alerts", "va", "kms")
DEFAULT_DATABASE = "lamassu"
# The names of the unified database: the plan's (db-to-schema.md) and upstream's schema branch's (feat/schema-db,
# MAIN_DB_NAME in engines/storage/postgres). Preflight reports the one not chosen when it holds service schemas.
UNIFIED_DATABASE_NAMES: tuple[str, ...] = (DEFAULT_DATABASE, "pki")
GOOSE_TABLE = "goose_db_version"
# The database a connection opens when it has none of its own to open (creating the unified one, the lock).
MAINTENANCE_DATABASE = "postgres"
# Where the copy module keeps its journal: outside every service schema.
JOURNAL_SCHEMA = "lamassu_migration"
COLLECTION_VERSION = "0.1.0"
# The online move (postgres_db_to_schema online: live/switch): its logical replication slots (server-wide) and
# publications (in each source database) start with this prefix; the table of its live copies is in the journal.
MOVE_PREFIX = "lamassu_move_"
ONLINE_TABLE = "db_to_schema_online"
# How the legacy databases are copied: with the services stopped (offline) or while they run (online).
MOVE_MODES: tuple[str, ...] = ("offline", "online")


def move_slot_name(target_database_oid: int, schema: str) -> str:
    """The slot (and publication) of the online move of one service into ``schema`` of the database whose OID is
    given: a re-run finds it by this name; two unified databases of one server do not share one."""
    return f"{MOVE_PREFIX}{int(target_database_oid)}_{schema}"[:63]
