# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The single import point of psycopg2.

The import is guarded so that module files load (and ``ansible-doc`` and the
sanity import test work) without the driver; ``module.run_module`` reports
the missing library through ``missing_required_lib``.
"""

from __future__ import annotations

import traceback

__all__ = ["HAS_PSYCOPG2", "PSYCOPG2_IMPORT_ERROR", "extensions", "extras", "pg_errors", "psycopg2", "sql"]

try:
    import psycopg2
    import psycopg2.errors as pg_errors
    from psycopg2 import extensions, extras, sql
except ImportError:
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR: str | None = traceback.format_exc()
    psycopg2 = sql = extensions = extras = pg_errors = None
else:
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
