"""Whether Ansible can hand its files to the user it becomes: decided from the connection and one probe."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.plugin_utils.host_access import assess, parse_probe, refusal


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("1000\nacl\n", (1000, True)),
        ("1000\nno-acl\n", (1000, False)),
        ("0\nno-acl\n", (0, False)),
        ("", (None, False)),
    ],
)
def test_the_probe_tells_the_login_uid_and_setfacl(stdout, expected):
    assert parse_probe(stdout) == expected


@pytest.mark.parametrize(
    ("pipelining", "probe", "modules_run", "async_jobs"),
    [
        (False, None, True, True),  # no unprivileged become: nothing to hand over
        (False, "1000\nacl", True, True),
        (False, "0\nno-acl", True, True),  # logged in as root: chown hands the file over
        (True, "1000\nno-acl", True, False),  # modules piped, async jobs need a file
        (False, "1000\nno-acl", False, False),
    ],
)
def test_modules_and_async_jobs_run_where_a_file_or_the_pipe_reaches_the_become_user(
    pipelining, probe, modules_run, async_jobs
):
    access = assess("postgres" if probe else None, pipelining, probe)
    assert (access.modules_run, access.async_jobs) == (modules_run, async_jobs)


def test_the_refusal_names_host_user_and_both_fixes():
    message = refusal(assess("postgres", False, "1000\nno-acl"), "db1")
    assert "'postgres' on db1" in message and "ansible_pipelining=true" in message and "acl package" in message
