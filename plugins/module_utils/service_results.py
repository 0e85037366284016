# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several schemas in one module run (the ``services`` forms of the copy and migrate modules): the results of the
schemas combined, and the error of the one that failed named, with what the schemas before it did."""

from __future__ import annotations

from .errors import LamassuError


def combined(results: list[dict]) -> dict:
    """The module's result: ``results`` per schema (each with ``schema``), changed when one changed, their
    ``queries`` in order."""
    return {
        "changed": any(result["changed"] for result in results),
        "results": results,
        "queries": [query for result in results for query in result.get("queries") or []],
    }


def failed_among(exc: LamassuError, name: str, results: list[dict]) -> LamassuError:
    """The error of one of several schemas run in order, named: its ``results`` hold what each schema before it
    returned, then its own partial result with ``failed`` and ``msg``."""
    failed = {"schema": name, "failed": True, "msg": str(exc), **exc.result}
    return type(exc)(f"{name}: {exc}", {"results": [*results, failed]})
