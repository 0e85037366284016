# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-ins for what the managed host's Python (3.8 or newer) may not have.

``zip(..., strict=True)`` is Python 3.10; ``zip_strict`` keeps its intent (equal lengths, else ValueError)
on every Python the modules support.
"""

from __future__ import annotations

import itertools

_MISSING = object()


def zip_strict(*iterables):
    """``zip(*iterables, strict=True)``: the same tuples, lazily; ValueError once an iterable runs out early."""
    for items in itertools.zip_longest(*iterables, fillvalue=_MISSING):
        short = [position for position, item in enumerate(items, 1) if item is _MISSING]
        if short:
            longer = next(position for position, item in enumerate(items, 1) if item is not _MISSING)
            raise ValueError(f"zip_strict() argument {short[0]} is shorter than argument {longer}")
        yield items
