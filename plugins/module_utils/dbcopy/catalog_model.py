# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The source schema as plain dataclasses: what ``catalog.read_catalog`` fills and the other modules read.

``view_order`` orders the views so that each comes after the views it selects from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidInput

# OIDs below this are built into the server: their binary COPY format is the same in every database.
FIRST_NORMAL_OID = 16384


@dataclass(frozen=True)
class Grant:
    grantee: str  # a role name, or PUBLIC
    privilege: str
    grantable: bool


@dataclass
class Column:
    name: str
    type: str
    type_oid: int
    not_null: bool = False
    default: str | None = None
    identity: str = ""  # '' | 'a' (ALWAYS) | 'd' (BY DEFAULT)
    generated: str = ""  # '' | 's' (STORED)
    collation: str | None = None  # qualified name when it differs from the type's default
    comment: str | None = None
    acl: list[Grant] = field(default_factory=list)


@dataclass
class Constraint:
    name: str
    kind: str  # p u c f x
    definition: str  # pg_get_constraintdef, unqualified
    validated: bool = True
    comment: str | None = None
    index_comment: str | None = None  # of the index behind a primary key, unique or exclusion constraint


@dataclass
class Index:
    name: str
    unique: bool
    body: str  # what follows ``ON <table> USING`` in pg_get_indexdef
    comment: str | None = None


@dataclass
class Sequence:
    name: str
    owner: str
    data_type: str
    start: int
    increment: int
    minimum: int
    maximum: int
    cache: int
    cycle: bool
    owned_by: tuple[str, str] | None = None  # (table, column)
    identity: bool = False
    last_value: int | None = None
    is_called: bool = False
    comment: str | None = None
    acl: list[Grant] | None = None


@dataclass
class Table:
    name: str
    oid: int
    owner: str
    columns: list[Column] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    unlogged: bool = False
    options: list[str] = field(default_factory=list)
    comment: str | None = None
    acl: list[Grant] | None = None
    estimated_rows: int = 0
    bytes: int = 0

    @property
    def copy_columns(self) -> list[str]:
        """Columns that COPY moves: generated columns are computed again by the target."""
        return [c.name for c in self.columns if not c.generated]

    @property
    def binary_safe(self) -> bool:
        """Binary COPY embeds type OIDs of array elements and composites: safe for built-in types only."""
        return all(c.type_oid < FIRST_NORMAL_OID for c in self.columns)


@dataclass
class View:
    name: str
    oid: int
    owner: str
    definition: str
    options: list[str] = field(default_factory=list)
    comment: str | None = None
    column_comments: dict[str, str] = field(default_factory=dict)
    acl: list[Grant] | None = None
    depends_on: list[str] = field(default_factory=list)


@dataclass
class TypeDef:
    name: str
    kind: str  # enum | domain | range | composite
    owner: str
    labels: list[str] = field(default_factory=list)  # enum
    base: str = ""  # domain
    collation: str | None = None  # domain
    default: str | None = None  # domain
    not_null: bool = False  # domain
    checks: list[Constraint] = field(default_factory=list)  # domain
    attributes: list[Column] = field(default_factory=list)  # composite
    range_options: list[tuple[str, str]] = field(default_factory=list)  # range: (option, value SQL)
    comment: str | None = None
    acl: list[Grant] | None = None


@dataclass
class Extension:
    name: str
    schema: str
    version: str


@dataclass
class SourceCatalog:
    database: str
    schema: str
    schema_owner: str
    schema_comment: str | None
    schema_acl: list[Grant] | None
    tables: list[Table] = field(default_factory=list)
    sequences: list[Sequence] = field(default_factory=list)
    views: list[View] = field(default_factory=list)
    types: list[TypeDef] = field(default_factory=list)
    extensions: list[Extension] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    goose_version: int | None = None


def grants_from_rows(rows) -> list[Grant] | None:
    if rows is None:
        return None
    return [Grant(grantee, privilege, grantable) for grantee, privilege, grantable in rows]


def view_order(views: list[View]) -> list[View]:
    """Views after the views they select from (a stable topological order)."""
    by_name = {v.name: v for v in views}
    done: list[View] = []
    seen: set[str] = set()

    def visit(view: View, path: tuple[str, ...]) -> None:
        if view.name in seen:
            return
        if view.name in path:
            raise InvalidInput(f"Views depend on each other in a cycle: {' -> '.join((*path, view.name))}")
        for dep in view.depends_on:
            if dep in by_name:
                visit(by_name[dep], (*path, view.name))
        seen.add(view.name)
        done.append(view)

    for view in views:
        visit(view, ())
    return done
