# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A process that outlives its module: started detached (its own session, no inherited descriptors, so neither
Ansible nor an SSH channel waits for it), answering once through a pipe; and the watch of another process that
must stay alive.
"""

from __future__ import annotations

import json
import os
import select
import time
from collections.abc import Callable


class ProcessWatch:
    """A process that must stay alive, told apart from a later process that reuses its id by its start time."""

    def __init__(self, pid: int):
        self.pid = pid
        self.started = self._start_time()

    def _stat(self) -> list[str] | None:
        try:
            with open(f"/proc/{self.pid}/stat", encoding="utf-8") as stat:
                return stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None

    def _start_time(self) -> str | None:
        fields = self._stat()
        return fields[19] if fields and len(fields) > 19 else None

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        fields = self._stat()
        if fields is None:  # no /proc: the signal answer is all there is
            return True
        # a zombie has ended (its parent has not collected it yet); a new start time is another process
        return fields[0] not in ("Z", "X") and (self.started is None or fields[19] == self.started)


def detach(body: Callable[[Callable[[dict], None]], None], answer_timeout: float) -> dict:
    """Run ``body`` in a daemon process (its own session, no inherited descriptors, so neither Ansible nor
    an SSH channel waits for it) and return the first answer it reports."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        _daemon(body, read_end, write_end)
    os.close(write_end)
    os.waitpid(child, 0)
    chunks: list[bytes] = []
    deadline = time.monotonic() + answer_timeout
    try:
        while time.monotonic() < deadline:
            if select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))[0]:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_end)
    text = b"".join(chunks).decode()
    if not text:
        return {"error": f"no answer within {answer_timeout:g} s"}
    return json.loads(text.splitlines()[0])


def _daemon(body: Callable[[Callable[[dict], None]], None], read_end: int, write_end: int) -> None:
    try:
        os.close(read_end)
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        os.chdir("/")
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, write_end)
        os.closerange(write_end + 1, 65536)
        answered = []

        def report(answer: dict) -> None:
            os.write(write_end, (json.dumps(answer) + "\n").encode())
            os.close(write_end)
            answered.append(True)

        try:
            body(report)
        except Exception as exc:  # the parent reports it: a daemon has nowhere else to say it
            if not answered:
                report({"error": str(exc)})
    finally:
        os._exit(0)
