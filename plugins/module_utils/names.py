# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of PostgreSQL identifiers given by operators, done before anything changes."""

from __future__ import annotations

from .errors import InvalidInput

MAX_IDENTIFIER_BYTES = 63


def check_identifier(name: str | None, what: str, allow_system: bool = False) -> str:
    """Return ``name`` if PostgreSQL would store it exactly as given; raise InvalidInput otherwise.

    Quotes, spaces, semicolons and capitals are fine: every identifier is quoted
    with ``psycopg2.sql.Identifier``. Empty names, names PostgreSQL would
    silently truncate and reserved ``pg_`` names are refused.
    """
    if name is None or name == "":
        raise InvalidInput(f"The {what} name is empty")
    if "\x00" in name:
        raise InvalidInput(f"The {what} name {name!r} contains a NUL character")
    size = len(name.encode("utf-8"))
    if size > MAX_IDENTIFIER_BYTES:
        raise InvalidInput(
            f"The {what} name {name!r} is {size} bytes long; PostgreSQL would truncate it to {MAX_IDENTIFIER_BYTES} bytes"
        )
    if not allow_system and name.lower().startswith("pg_"):
        raise InvalidInput(f"The {what} name {name!r} starts with 'pg_', which PostgreSQL reserves for system objects")
    return name
