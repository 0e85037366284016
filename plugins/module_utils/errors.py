# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception family of the collection.

Every message is meant for an operator: it names the object and the cause and
never contains a password. ``result`` carries what was already done (like
goose's PartialError), so a failed run still reports it.
"""

from __future__ import annotations


class LamassuError(Exception):
    """Base class; ``main()`` of every module turns it into ``fail_json``."""

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.result = dict(result or {})


class DriverMissing(LamassuError):
    """psycopg2 cannot be imported on the managed host."""


class ConnectionFailed(LamassuError):
    """The server refused or could not be reached."""


class InvalidInput(LamassuError):
    """A parameter or a file is wrong; raised before anything changes."""


class OperationFailed(LamassuError):
    """A statement failed while changing the database."""
