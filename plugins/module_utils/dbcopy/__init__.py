# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy one schema of a database into a schema of another database on the same server.

Layers: ``catalog`` reads the source into plain dataclasses, ``ddl`` turns them
into statements for a staging schema, ``stream`` moves the rows with COPY,
``verify`` compares counts and checksums, ``journal`` records finished copies,
``freeze`` makes the source read-only, ``engine`` runs the phases.
"""
