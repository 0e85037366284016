# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A goose v3 compatible migration runner: file discovery, SQL parsing, planning, version table."""
