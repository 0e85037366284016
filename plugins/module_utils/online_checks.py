# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the online move can run on a server, before anything changes, and the collection's slots.

The online move copies each legacy database from a logical replication slot's exported snapshot while the services
run, then applies the slot's changes (one slot ``lamassu_move_<target oid>_<schema>`` per service, plugin
pgoutput, kept until the switch, and a publication of the same name of every table of the legacy database's
``public`` schema). The reads (server settings, slots, the legacy databases' tables and publications) and the rules
(each failing point a ``Problem`` whose sentence says exactly what to do) live here; ``info`` calls the reads and
the rules. ``read_slots`` lists the collection's slots (``read_source`` its publications in a legacy database);
``drop_slot`` and ``drop_publication`` remove one (the copy's ``dbcopy/online.py`` calls them on every way out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ._pg import sql
from .errors import Fix, Problem
from .lamassu import MOVE_PREFIX, move_slot_name
from .session import Session
from .upgrade_lock import read_holders

SUPPORTED_VERSIONS = (130000, 189999)  # server_version_num: PostgreSQL 13 to 18
OFFLINE = Fix("move_mode", "offline", "the services stay stopped for the whole copy, not only its last seconds")
MB = 1024 * 1024
# pg_class.relreplident: what a published UPDATE or DELETE carries to find its row.
IDENTITY_NAMES = {"d": "DEFAULT", "n": "NOTHING", "f": "FULL", "i": "USING INDEX"}
_PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

_SERVER = """
SELECT current_setting('server_version'), current_setting('server_version_num')::int,
       current_setting('wal_level'), current_setting('max_replication_slots')::int,
       current_setting('max_wal_senders')::int,
       (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'walsender')::int,
       current_user::text, r.rolsuper, r.rolreplication,
       (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = %s)::bigint
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
"""
_ALL_SLOTS = "SELECT slot_name::text, active FROM pg_catalog.pg_replication_slots ORDER BY 1"
# The WAL a slot holds back: from its restart_lsn to the server's end of WAL (received WAL on a standby).
_SLOTS = """
SELECT slot_name::text, database::text, plugin::text, active,
       pg_catalog.pg_wal_lsn_diff(
           CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn()
                ELSE pg_catalog.pg_current_wal_lsn() END,
           restart_lsn)::bigint,
       confirmed_flush_lsn::text, wal_status::text
FROM pg_catalog.pg_replication_slots WHERE slot_name LIKE %s ORDER BY 1
"""
_TABLES = """
SELECT c.relname::text, pg_catalog.pg_get_userbyid(c.relowner), pg_catalog.pg_has_role(c.relowner, 'USAGE'),
       c.relreplident::text,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1
"""
_CAN_CREATE = "SELECT pg_catalog.has_database_privilege(current_database(), 'CREATE')"
_PUBLICATIONS = "SELECT pubname::text FROM pg_catalog.pg_publication WHERE pubname LIKE %s ORDER BY 1"


def name_pattern() -> str:
    """The LIKE pattern of the collection's slot and publication names (its underscores taken literally)."""
    return MOVE_PREFIX.replace("_", "\\_") + "%"


# ------------------------------------------------------------------------------------------ facts
@dataclass
class Slot:
    """A replication slot of the collection, as ``replication_slots`` returns it."""

    slot_name: str
    database: str | None
    plugin: str | None
    active: bool
    retained_bytes: int | None
    confirmed_flush_lsn: str | None
    wal_status: str | None = None
    stale: bool = False  # not in use and no run holds the upgrade lock: left over by an interrupted move

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SourceTable:
    name: str
    owner: str
    owned: bool  # the login role has the owner's privileges (a publication lists only tables its creator owns)
    identity: str  # pg_class.relreplident
    primary_key: bool

    @property
    def identified(self) -> bool:
        """Whether a published UPDATE or DELETE can name its row (else the service's own writes would fail)."""
        return self.identity in ("i", "f") or (self.identity == "d" and self.primary_key)


@dataclass
class SourceFacts:
    """One legacy database, as the online move needs it."""

    database: str
    can_create: bool = False
    tables: list[SourceTable] = field(default_factory=list)
    publications: list[str] = field(default_factory=list)  # the collection's publications in it


@dataclass
class ServerFacts:
    version: str
    version_num: int
    wal_level: str
    max_replication_slots: int
    max_wal_senders: int
    wal_senders_active: int
    login_user: str
    superuser: bool
    replication: bool
    target_oid: int | None  # the unified database's OID (None while it does not exist): part of each slot's name
    every_slot: dict[str, bool] = field(default_factory=dict)  # every slot of the server -> in use
    slots: list[Slot] = field(default_factory=list)  # the collection's
    lock_held: bool = False  # a run (upgrade, rollback, cleanup) holds the server-wide lock


# ------------------------------------------------------------------------------------------ reads
def read_server(session: Session, database: str) -> ServerFacts:
    """The settings, the login role, every slot and the collection's; ``session`` is on the maintenance database
    (where the upgrade lock lives), ``database`` the unified database."""
    facts = ServerFacts(*session.fetch_one(_SERVER, (database,)))
    facts.every_slot = dict(session.fetch_all(_ALL_SLOTS))
    facts.lock_held = bool(read_holders(session))
    facts.slots = read_slots(session, facts.lock_held)
    return facts


def read_slots(session: Session, lock_held: bool | None = None) -> list[Slot]:
    """The collection's slots on the server, on a session of the maintenance database (where the upgrade lock
    lives): a slot not in use is ``stale`` unless a run holds that lock (``lock_held``, read when None), since an
    upgrade's preflight under the lock resumes it."""
    if lock_held is None:
        lock_held = bool(read_holders(session))
    slots = [Slot(*row) for row in session.fetch_all(_SLOTS, (name_pattern(),))]
    for slot in slots:
        slot.stale = not slot.active and not lock_held
    return slots


def read_source(session: Session, database: str, schema: str) -> SourceFacts:
    """The tables of ``schema`` with their owner and replica identity, the CREATE privilege of the login role and
    the collection's publications, on a session of the legacy database ``database``."""
    return SourceFacts(
        database=database,
        can_create=bool(session.fetch_value(_CAN_CREATE)),
        tables=[SourceTable(*row) for row in session.fetch_all(_TABLES, (schema,))],
        publications=[name for (name,) in session.fetch_all(_PUBLICATIONS, (name_pattern(),))],
    )


# ------------------------------------------------------------------------------------------ changes
def drop_slot(session: Session, name: str) -> None:
    """Drop one of the collection's slots (rollback, cleanup); ``queries`` lists it, check mode only renders it."""
    _own_name(name)
    session.execute("SELECT pg_catalog.pg_drop_replication_slot(%s)", (name,), what=f"drop replication slot {name}")


def drop_publication(session: Session, name: str) -> None:
    """Drop one of the collection's publications, on a session of its legacy database."""
    _own_name(name)
    statement = sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name))
    session.execute(statement, what=f"drop publication {name}")


def _own_name(name: str) -> None:
    if not name.startswith(MOVE_PREFIX):
        raise ValueError(f"{name!r} is not a name of the collection's online move (prefix {MOVE_PREFIX!r})")


# ------------------------------------------------------------------------------------------ rules
def shown(name: str) -> str:
    """An identifier as an operator types it into psql (quoted unless it is a plain lower-case name)."""
    return name if _PLAIN_NAME.match(name) else '"' + name.replace('"', '""') + '"'


def restart_advice(setting: str, value: object) -> str:
    return (
        f"ALTER SYSTEM SET {setting} = {value} (as a superuser) and restart PostgreSQL - the restart is itself a short "
        "outage of every database of the server, taken when you choose"
    )


def other_slots(server: ServerFacts, to_move: list[str]) -> dict[str, bool]:
    """The slots of the server (name -> in use) but the collection's own of the services to move, which a re-run
    resumes."""
    resumed = {move_slot_name(server.target_oid, s) for s in to_move} if server.target_oid is not None else set()
    return {name: active for name, active in server.every_slot.items() if name not in resumed}


def settings_problems(server: ServerFacts, to_move: list[str]) -> list[Problem]:
    """The server's version, wal_level, free slots and free WAL senders, and the login role's REPLICATION."""
    problems = []
    low, high = SUPPORTED_VERSIONS
    if not low <= server.version_num <= high:
        problems.append(
            Problem(f"PostgreSQL {server.version}: the online move runs on PostgreSQL 13 to 18 only", OFFLINE)
        )
    if server.wal_level != "logical":
        problems.append(
            Problem(
                f"wal_level is {server.wal_level!r}: the online move decodes the legacy databases' changes from the "
                f"WAL, which needs wal_level = logical; run {restart_advice('wal_level', 'logical')}; or move "
                "offline (lamassu_move_mode: offline)",
                OFFLINE,
            )
        )
    others = other_slots(server, to_move)
    free_slots = server.max_replication_slots - len(others)
    if free_slots < len(to_move):
        idle = [name for name, active in others.items() if not active]
        drops = (
            "; or drop the slots not in use that nothing needs: "
            + ", ".join(f"SELECT pg_drop_replication_slot('{name}')" for name in idle)
            if idle
            else ""
        )
        problems.append(
            Problem(
                f"max_replication_slots is {server.max_replication_slots} and {len(others)} other slot(s) exist, "
                f"leaving {max(free_slots, 0)} free: the online move keeps one slot per service to move until the "
                f"switch, {len(to_move)} ({', '.join(to_move)}); run "
                f"{restart_advice('max_replication_slots', len(others) + len(to_move))}{drops}",
                OFFLINE,
            )
        )
    free_senders = server.max_wal_senders - server.wal_senders_active
    if free_senders < len(to_move):
        problems.append(
            Problem(
                f"max_wal_senders is {server.max_wal_senders} and {server.wal_senders_active} WAL sender(s) run, "
                f"leaving {max(free_senders, 0)} free: each live copy holds one (the connection that exported the "
                f"slot's snapshot, then its stream), and the copies may run at once, {len(to_move)}; run "
                f"{restart_advice('max_wal_senders', server.wal_senders_active + len(to_move))}",
                OFFLINE,
            )
        )
    if not (server.superuser or server.replication):
        problems.append(
            Problem(
                f"login role {server.login_user!r} has neither REPLICATION nor superuser: the online move creates "
                f"replication slots and reads their changes; run ALTER ROLE {shown(server.login_user)} REPLICATION",
                OFFLINE,
            )
        )
    return problems


def source_problems(source: SourceFacts, login_user: str) -> list[Problem]:
    """What keeps the login role from publishing every table of one legacy database, and the tables a publication
    would break (no replica identity: the service's own UPDATE and DELETE would fail once they are published)."""
    problems = []
    if not source.can_create:
        problems.append(
            Problem(
                f"login role {login_user!r} lacks CREATE on legacy database {source.database!r}, needed to create "
                f"the online move's publication there; run GRANT CREATE ON DATABASE {shown(source.database)} TO "
                f"{shown(login_user)}",
                OFFLINE,
            )
        )
    not_owned: dict[str, list[str]] = {}
    for table in source.tables:
        if not table.owned:
            not_owned.setdefault(table.owner, []).append(table.name)
    for owner, names in not_owned.items():
        problems.append(
            Problem(
                f"login role {login_user!r} does not own table(s) {', '.join(names)} of legacy database "
                f"{source.database!r} (owner {owner!r}), and a publication lists only tables its creator owns; run "
                f"GRANT {shown(owner)} TO {shown(login_user)}",
                OFFLINE,
            )
        )
    for table in source.tables:
        if not table.identified:
            problems.append(
                Problem(
                    f"table {table.name!r} of legacy database {source.database!r} has no replica identity "
                    f"(REPLICA IDENTITY {IDENTITY_NAMES.get(table.identity, table.identity)}, "
                    f"{'a' if table.primary_key else 'no'} primary key): once published, every UPDATE and DELETE of "
                    "the running service on it would fail; the move does not change the source: add a primary key "
                    "to it, or move offline (lamassu_move_mode: offline)",
                    OFFLINE,
                )
            )
    return problems


def stale_slot_problem(slot: Slot) -> str:
    retained = f"{slot.retained_bytes / MB:.1f} MB" if slot.retained_bytes is not None else "an unknown amount"
    return (
        f"replication slot {slot.slot_name!r} (database {slot.database!r}) of an interrupted online move is not in "
        f"use and holds back {retained} of WAL, which PostgreSQL keeps until the slot is dropped (the disk fills): "
        "ansible-playbook lamassuiot.postgres.rollback or lamassuiot.postgres.cleanup drops it (a re-run of the "
        f"online upgrade resumes it); by hand SELECT pg_drop_replication_slot('{slot.slot_name}')"
    )


def leftover_publications(server: ServerFacts, sources) -> list[str]:
    """Notices of the collection's publications whose slot is gone while no run holds the lock (nothing reads them,
    they hold back no WAL; a later online move would find them in its way)."""
    if server.lock_held:
        return []
    slots = {slot.slot_name for slot in server.slots}
    return [
        f"publication {name!r} in legacy database {source.database!r} is left over from an online move whose slot "
        "is gone: ansible-playbook lamassuiot.postgres.rollback or lamassuiot.postgres.cleanup drops it; by hand "
        f"DROP PUBLICATION {shown(name)} in that database"
        for source in sources
        for name in source.publications
        if name not in slots
    ]


def checks(server: ServerFacts, sources: dict[str, SourceFacts], to_move: list[str]) -> dict:
    """The facts read, as ``online.checks`` returns them."""
    others = list(other_slots(server, to_move))
    return {
        "server_version_num": server.version_num,
        "wal_level": server.wal_level,
        "max_replication_slots": server.max_replication_slots,
        "other_slots": others,
        "slots_free": server.max_replication_slots - len(others),
        "slots_needed": len(to_move),
        "max_wal_senders": server.max_wal_senders,
        "wal_senders_active": server.wal_senders_active,
        "login_user": server.login_user,
        "superuser": server.superuser,
        "replication": server.replication,
        "services": list(to_move),
        "sources": {
            service: {
                "database": source.database,
                "can_create": source.can_create,
                "tables": len(source.tables),
                "not_owned": [t.name for t in source.tables if not t.owned],
                "without_identity": [t.name for t in source.tables if not t.identified],
            }
            for service, source in sources.items()
            if service in to_move
        },
        "publications": [
            {"database": source.database, "name": name} for source in sources.values() for name in source.publications
        ],
    }


def assess(server: ServerFacts, sources: dict[str, SourceFacts], to_move: list[str], mode: str) -> dict:
    """``online`` of postgres_lamassu_info: the mode asked for, whether the online move can run for the services
    still to move (``sources``: service -> its legacy database's facts, the ones that could be read), the facts and
    every problem with its fix (``Problem`` objects: the plan turns them into its own problems)."""
    problems = settings_problems(server, to_move) if to_move else []
    for service in to_move:
        if service in sources:
            problems += source_problems(sources[service], server.login_user)
    return {
        "mode": mode,
        "ready": not problems,
        "checks": checks(server, sources, to_move),
        "problems": [{"msg": str(p), "fix": p.fix} for p in problems],
    }
