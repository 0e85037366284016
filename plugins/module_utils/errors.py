# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception family of the collection.

Every message is meant for an operator: it names the object and the cause and
never contains a password. ``result`` carries what was already done (like
goose's PartialError), so a failed run still reports it. ``fix`` names the module
option that gets past the error; the roles know which playbook variable sets it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Fix:
    """The module option an operator can set to get past an error, its value, and what setting it costs."""

    option: str
    value: object
    why: str


class Problem(str):
    """A sentence that stops the upgrade, with the ``Fix`` that gets past it when one option does. It is a ``str``
    (shown, compared and returned as its text); ``fix`` is the Fix as a dict, or None."""

    fix: dict | None

    def __new__(cls, text: str, fix: Fix | None = None) -> Problem:
        problem = super().__new__(cls, text)
        problem.fix = asdict(fix) if fix is not None else None
        return problem


class LamassuError(Exception):
    """Base class; ``main()`` of every module turns it into ``fail_json``, ``fix`` into the result's ``fix``."""

    def __init__(self, message: str, result: dict | None = None, fix: Fix | None = None):
        super().__init__(message)
        self.result = dict(result or {})
        if fix is not None:
            self.result["fix"] = asdict(fix)


class ConnectionFailed(LamassuError):
    """The server refused or could not be reached."""


class InvalidInput(LamassuError):
    """A parameter or a file is wrong; raised before anything changes."""


class OperationFailed(LamassuError):
    """A statement failed while changing the database."""
