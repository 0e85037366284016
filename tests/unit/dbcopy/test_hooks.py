"""The copy's test hooks are read once from the environment; check mode never pauses."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.hooks import (
    PAUSE_AT_ENV,
    PAUSE_FILE_ENV,
    SPLIT_ENV,
    Hooks,
)


@pytest.mark.parametrize(("check_mode", "pause_at"), [(False, "ddl"), (True, None)])
def test_from_environment(monkeypatch, check_mode, pause_at):
    monkeypatch.setenv(PAUSE_AT_ENV, "ddl")
    monkeypatch.setenv(PAUSE_FILE_ENV, "/nonexistent/pause")
    monkeypatch.setenv(SPLIT_ENV, "16384")
    hooks = Hooks.from_environment(check_mode)
    assert (hooks.pause_at, hooks.split_min_bytes) == (pause_at, 16384)


def test_no_environment_asks_nothing(monkeypatch):
    for name in (PAUSE_AT_ENV, PAUSE_FILE_ENV, SPLIT_ENV):
        monkeypatch.delenv(name, raising=False)
    hooks = Hooks.from_environment(False)
    assert (hooks.pause_at, hooks.pause_file, hooks.split_min_bytes) == (None, None, None)


def test_pause_writes_the_file_once_and_waits_for_its_removal(tmp_path, monkeypatch):
    path = tmp_path / "pause"
    hooks = Hooks(pause_at="data", pause_file=str(path))
    slept = []

    def remove_on_sleep(seconds):
        slept.append(seconds)
        path.unlink()

    monkeypatch.setattr("time.sleep", remove_on_sleep)
    hooks.pause("ddl")
    assert not path.exists() and not slept
    hooks.pause("data")
    assert slept == [0.05] and not path.exists()
    hooks.pause("data")  # once per run
    assert slept == [0.05]
