# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The messages of ``pgoutput``, PostgreSQL's logical replication output plugin, protocol version 1.

The format is the one of the PostgreSQL documentation, "Logical Replication Message Formats"; PostgreSQL 13 to 18
send ``proto_version`` 1 alike. ``decode`` reads one message; ``Transactions`` follows a stream of them and hands
back each transaction at its commit, every change with the relation (table) it was decoded against.

Tuple values are the text form of the source session (``SESSION_OPTIONS`` makes it the one PostgreSQL's own
subscriber reads), decoded as UTF-8: the database encoding of every Lamassu database. Messages of later protocol
versions (streamed or two-phase transactions) are refused as unknown.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Union

# The settings PostgreSQL's subscriber gives its walsender connection (libpq ``options``), so that the text forms
# read back the same in any target session whatever the source's defaults.
SESSION_OPTIONS = "-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3"
PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
TRUNCATE_CASCADE = 1
TRUNCATE_RESTART_IDENTITY = 2


class _Unchanged:
    """The value of a TOASTed column an UPDATE left as it was: pgoutput does not send it."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"

    def __reduce__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()
Value = Union[None, _Unchanged, str]


def lsn_to_int(lsn: str) -> int:
    """``'16/B374D848'`` -> the 64-bit position."""
    high, sep, low = lsn.partition("/")
    if not sep:
        raise ValueError(f"Not an LSN (expected two hexadecimal halves like '16/B374D848'): {lsn!r}")
    return (int(high, 16) << 32) | int(low, 16)


def int_to_lsn(position: int) -> str:
    """The 64-bit position written as PostgreSQL writes it (``%X/%X``)."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def pg_timestamp(microseconds: int) -> datetime:
    """A pgoutput timestamp (microseconds since 2000-01-01 UTC) as an aware datetime in UTC."""
    return PG_EPOCH + timedelta(microseconds=microseconds)


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    key: bool  # part of the replica identity (every column is, under REPLICA IDENTITY FULL)
    type_modifier: int = -1


@dataclass(frozen=True)
class Relation:
    """A table as the stream describes it: sent before its first change in a session, and again when it changes."""

    oid: int
    namespace: str  # '' stands for pg_catalog
    name: str
    replica_identity: str  # 'd', 'n', 'f' or 'i' (pg_class.relreplident)
    columns: tuple[Column, ...]

    @property
    def key_columns(self) -> tuple[Column, ...]:
        return tuple(column for column in self.columns if column.key)

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace or 'pg_catalog'}.{self.name}"


@dataclass(frozen=True)
class Tuple:
    """One row: ``kind`` 'N' (new), 'K' (old replica identity key) or 'O' (whole old row)."""

    kind: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: int  # microseconds since 2000-01-01 UTC, see pg_timestamp
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    # What a consumer confirms once the transaction is applied: the slot resumes after it. It is also the WAL
    # position both read_message() (data_start) and pg_logical_slot_get_binary_changes (lsn) give this message.
    end_lsn: int
    commit_time: int
    flags: int = 0


@dataclass(frozen=True)
class Origin:
    commit_lsn: int
    name: str


@dataclass(frozen=True)
class TypeInfo:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True)
class Insert:
    relation_oid: int
    new: Tuple
    relation: Relation | None = None  # set by Transactions: the relation as known when the change came


@dataclass(frozen=True)
class Update:
    relation_oid: int
    old: Tuple | None  # None, or kind 'K' or 'O'
    new: Tuple
    relation: Relation | None = None


@dataclass(frozen=True)
class Delete:
    relation_oid: int
    old: Tuple  # kind 'K' or 'O'
    relation: Relation | None = None


@dataclass(frozen=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool
    relations: tuple[Relation, ...] = ()  # set by Transactions, in the order of relation_oids


@dataclass(frozen=True)
class LogicalMessage:
    """``pg_logical_emit_message``: sent only when the ``messages`` option asks for it."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes


RowChange = Union[Insert, Update, Delete]
Change = Union[Insert, Update, Delete, Truncate]
Message = Union[Begin, Commit, Origin, Relation, TypeInfo, Insert, Update, Delete, Truncate, LogicalMessage]


class _Reader:
    def __init__(self, payload: bytes) -> None:
        self.payload = bytes(payload)
        self.offset = 0

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.payload):
            raise ValueError(f"pgoutput message truncated at byte {self.offset} (needs {size} more)")
        values = struct.unpack_from(fmt, self.payload, self.offset)
        self.offset += size
        return values if len(values) > 1 else values[0]

    def byte(self) -> str:
        return chr(self.unpack("!B"))

    def take(self, length: int) -> bytes:
        if length < 0 or self.offset + length > len(self.payload):
            raise ValueError(f"pgoutput message truncated at byte {self.offset} (needs {length} more)")
        chunk = self.payload[self.offset : self.offset + length]
        self.offset += length
        return chunk

    def string(self) -> str:
        end = self.payload.find(b"\0", self.offset)
        if end < 0:
            raise ValueError(f"pgoutput string not terminated (from byte {self.offset})")
        text = self.payload[self.offset : end].decode("utf-8")
        self.offset = end + 1
        return text

    def row(self, kind: str) -> Tuple:
        values = []
        for _index in range(self.unpack("!h")):
            marker = self.byte()
            if marker == "n":
                values.append(None)
            elif marker == "u":
                values.append(UNCHANGED)
            elif marker == "t":
                values.append(self.take(self.unpack("!i")).decode("utf-8"))
            elif marker == "b":
                raise ValueError("pgoutput sent a binary column value ('b'): the stream must be read without binary")
            else:
                raise ValueError(f"Unknown pgoutput column value kind {marker!r}")
        return Tuple(kind, tuple(values))

    def end(self, message: Message) -> Message:
        if self.offset != len(self.payload):
            kind = type(message).__name__
            raise ValueError(f"pgoutput {kind} message has {len(self.payload) - self.offset} bytes left over")
        return message


def _begin(reader: _Reader) -> Begin:
    return Begin(*reader.unpack("!QqI"))


def _commit(reader: _Reader) -> Commit:
    flags, commit_lsn, end_lsn, commit_time = reader.unpack("!BQQq")
    return Commit(commit_lsn, end_lsn, commit_time, flags)


def _origin(reader: _Reader) -> Origin:
    return Origin(reader.unpack("!Q"), reader.string())


def _relation(reader: _Reader) -> Relation:
    oid = reader.unpack("!I")
    namespace, name = reader.string(), reader.string()
    replica_identity = reader.byte()
    columns = []
    for _index in range(reader.unpack("!h")):
        flags = reader.unpack("!B")
        column_name = reader.string()
        type_oid, type_modifier = reader.unpack("!Ii")
        columns.append(Column(column_name, type_oid, bool(flags & 1), type_modifier))
    return Relation(oid, namespace, name, replica_identity, tuple(columns))


def _type(reader: _Reader) -> TypeInfo:
    return TypeInfo(reader.unpack("!I"), reader.string(), reader.string())


def _expect(reader: _Reader, allowed: str, what: str) -> str:
    marker = reader.byte()
    if marker not in allowed:
        raise ValueError(f"pgoutput {what}: expected one of {', '.join(allowed)}, got {marker!r}")
    return marker


def _insert(reader: _Reader) -> Insert:
    oid = reader.unpack("!I")
    _expect(reader, "N", "Insert")
    return Insert(oid, reader.row("N"))


def _update(reader: _Reader) -> Update:
    oid = reader.unpack("!I")
    marker = _expect(reader, "KON", "Update")
    old = None
    if marker != "N":
        old = reader.row(marker)
        _expect(reader, "N", "Update")
    return Update(oid, old, reader.row("N"))


def _delete(reader: _Reader) -> Delete:
    oid = reader.unpack("!I")
    return Delete(oid, reader.row(_expect(reader, "KO", "Delete")))


def _truncate(reader: _Reader) -> Truncate:
    count, options = reader.unpack("!iB")
    oids = tuple(reader.unpack("!I") for _index in range(count))
    return Truncate(oids, bool(options & TRUNCATE_CASCADE), bool(options & TRUNCATE_RESTART_IDENTITY))


def _message(reader: _Reader) -> LogicalMessage:
    flags, lsn = reader.unpack("!BQ")
    prefix = reader.string()
    return LogicalMessage(bool(flags & 1), lsn, prefix, reader.take(reader.unpack("!i")))


_DECODERS = {
    "B": _begin,
    "C": _commit,
    "O": _origin,
    "R": _relation,
    "Y": _type,
    "I": _insert,
    "U": _update,
    "D": _delete,
    "T": _truncate,
    "M": _message,
}


def decode(payload: bytes) -> Message:
    """One pgoutput message (protocol version 1) from its bytes."""
    if not payload:
        raise ValueError("Empty pgoutput message")
    reader = _Reader(payload)
    kind = reader.byte()
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ValueError(f"Unknown pgoutput message type {kind!r} (protocol version 1 knows {''.join(_DECODERS)})")
    return reader.end(decoder(reader))


@dataclass
class Transaction:
    """One committed transaction: its changes in order, each with its relation(s) as known when it came."""

    begin: Begin
    commit: Commit
    changes: list  # of Change
    origin: Origin | None = None


class Transactions:
    """Follows a pgoutput stream: ``feed`` each message; a transaction comes back whole at its commit.

    ``relations`` maps each relation OID to its last description: a Relation message replaces the one before
    (the table was altered), while the changes already collected keep the description they were decoded against.
    ``types`` holds the Type messages. Logical messages (``pg_logical_emit_message``) are not kept.
    """

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}
        self.types: dict[int, TypeInfo] = {}
        self._begin: Begin | None = None
        self._origin: Origin | None = None
        self._changes: list = []

    @property
    def in_transaction(self) -> bool:
        return self._begin is not None

    def feed(self, payload: bytes, data_start: int = 0) -> Transaction | None:
        """Take one message; ``data_start`` (its WAL position) only names where a refused message was."""
        message = decode(payload)
        if isinstance(message, Relation):
            self.relations[message.oid] = message
        elif isinstance(message, TypeInfo):
            self.types[message.oid] = message
        elif isinstance(message, Begin):
            if self._begin is not None:
                raise ValueError(f"pgoutput Begin at {int_to_lsn(data_start)} inside an open transaction")
            self._begin, self._origin, self._changes = message, None, []
        elif isinstance(message, Commit):
            begin = self._outside("Commit", data_start)
            transaction = Transaction(begin, message, self._changes, self._origin)
            self._begin, self._origin, self._changes = None, None, []
            return transaction
        elif isinstance(message, Origin):
            self._outside("Origin", data_start)
            self._origin = message
        elif isinstance(message, Truncate):
            self._outside("Truncate", data_start)
            relations = tuple(self._relation(oid, data_start) for oid in message.relation_oids)
            self._changes.append(replace(message, relations=relations))
        elif isinstance(message, (Insert, Update, Delete)):
            self._outside(type(message).__name__, data_start)
            relation = self._relation(message.relation_oid, data_start)
            self._changes.append(replace(message, relation=relation))
        return None

    def _outside(self, kind: str, data_start: int) -> Begin:
        if self._begin is None:
            raise ValueError(f"pgoutput {kind} at {int_to_lsn(data_start)} outside a transaction (no Begin before)")
        return self._begin

    def _relation(self, oid: int, data_start: int) -> Relation:
        try:
            return self.relations[oid]
        except KeyError:
            raise ValueError(
                f"pgoutput change at {int_to_lsn(data_start)} for relation {oid}, which no Relation message described"
            ) from None
