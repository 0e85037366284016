# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test hooks of the copy, read once from the module's environment.

With ``LAMASSU_DBCOPY_PAUSE_AT=<point>`` and ``LAMASSU_DBCOPY_PAUSE_FILE=<path>``, the run creates ``<path>``
when it reaches ``<point>``, one of ``phases.PAUSE_POINTS``, and waits until the file is removed (at most
``PAUSE_SECONDS``): tests use it to interrupt or disturb a run at a known point. Check mode never pauses.

With ``LAMASSU_DBCOPY_SPLIT_MIN_BYTES=<bytes>``, tables from that size on are copied in pieces (instead of
``snapshot.SPLIT_MIN_BYTES``), so that small test tables take the split path.
"""

from __future__ import annotations

import os
import threading
import time

from .phases import PAUSE_POINT_NAMES

PAUSE_AT_ENV = "LAMASSU_DBCOPY_PAUSE_AT"
PAUSE_FILE_ENV = "LAMASSU_DBCOPY_PAUSE_FILE"
SPLIT_ENV = "LAMASSU_DBCOPY_SPLIT_MIN_BYTES"
PAUSE_SECONDS = 300


class Hooks:
    """What a test asked of this run; ``Hooks()`` asks nothing."""

    def __init__(self, pause_at: str | None = None, pause_file: str | None = None, split_min_bytes: int | None = None):
        self.pause_at = pause_at
        self.pause_file = pause_file
        self.split_min_bytes = split_min_bytes
        self._paused: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, check_mode: bool) -> Hooks:
        split = os.environ.get(SPLIT_ENV)
        return cls(
            pause_at=None if check_mode else os.environ.get(PAUSE_AT_ENV),
            pause_file=os.environ.get(PAUSE_FILE_ENV),
            split_min_bytes=int(split) if split else None,
        )

    def pause(self, point: str) -> None:
        """Wait at pause point ``point`` while the pause file exists, once per run, whichever worker gets there
        first."""
        if point not in PAUSE_POINT_NAMES:
            raise ValueError(f"{point!r} is not a pause point of phases.PAUSE_POINTS")
        if self.pause_at != point:
            return
        with self._lock:
            if point in self._paused:
                return
            self._paused.add(point)
        path = self.pause_file
        if not path:
            return
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        deadline = time.monotonic() + PAUSE_SECONDS
        while os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
