# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can Ansible hand its files to the user it becomes on a managed host? Decided on the controller, before a module.

Ansible runs a module as an unprivileged become user (``become_user: postgres``, the usual PostgreSQL host setup)
either by pipelining (the module goes on stdin: no file) or by a temporary file it must let that user read: with
``setfacl`` (Debian's ``acl`` package), or ``chown`` when it logs in as root. Asynchronous jobs (the copies in the
background) always need the file. Without pipelining and without a way to share the file, Ansible's own error comes
at the first module ("Failed to set permissions on the temporary files ..."); this names the host, the user and
both fixes instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

PROBE = "id -u; command -v setfacl >/dev/null 2>&1 && echo acl || echo no-acl"


@dataclass(frozen=True)
class HostAccess:
    """What the connection to one host can do with files for its become user."""

    become_user: str | None
    pipelining: bool
    files_shared: bool  # a file Ansible writes can be handed to the become user (acl, or logged in as root)

    @property
    def modules_run(self) -> bool:
        return self.pipelining or self.files_shared

    @property
    def async_jobs(self) -> bool:
        """Ansible's async jobs copy a wrapper file to the host, pipelining or not."""
        return self.files_shared

    def as_dict(self) -> dict:
        return {**asdict(self), "modules_run": self.modules_run, "async_jobs": self.async_jobs}


def parse_probe(stdout: str) -> tuple[int | None, bool]:
    """``(uid of the login user, setfacl present)`` from the output of ``PROBE``."""
    lines = stdout.split()
    uid = int(lines[0]) if lines and lines[0].isdigit() else None
    return uid, "acl" in lines[1:]


def assess(become_user: str | None, pipelining: bool, probe_stdout: str | None) -> HostAccess:
    """``probe_stdout`` is None when Ansible does not become an unprivileged user (nothing to hand over)."""
    if probe_stdout is None:
        return HostAccess(become_user, pipelining, True)
    uid, acl = parse_probe(probe_stdout)
    return HostAccess(become_user, pipelining, acl or uid == 0)


def refusal(access: HostAccess, host: str) -> str:
    return (
        f"Ansible becomes the unprivileged user {access.become_user!r} on {host} without pipelining, and the host has "
        "no setfacl (the acl package): Ansible cannot hand its module files to that user, so no step can run. "
        "Nothing was changed. Turn pipelining on (ansible_pipelining=true in the inventory, or pipelining = True in "
        "the [connection] section of ansible.cfg), or install the acl package on the host."
    )


def async_note(access: HostAccess, host: str) -> str:
    return (
        f"Ansible becomes {access.become_user!r} on {host} with pipelining and the host has no setfacl (the acl "
        "package): Ansible's asynchronous jobs cannot run there, so every copy runs in the foreground, one after "
        "the other, without progress lines. Install the acl package on the host to copy large databases in the "
        "background."
    )
