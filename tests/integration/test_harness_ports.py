"""The throwaway servers of the harness survive a port taken between ``free_port()`` and the server's bind."""

import socket

import pytest

from tests.harness import pgcluster


def test_a_taken_port_moves_the_server_to_another(monkeypatch, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy])
        real_free_port = pgcluster.free_port
        monkeypatch.setattr(pgcluster, "free_port", lambda: next(ports, None) or real_free_port())
        cluster = pgcluster.start_cluster(str(tmp_path / "pg"))
        try:
            assert cluster.port != busy
            assert cluster.query("postgres", "SELECT 1") == [(1,)]
        finally:
            cluster.destroy()


def test_a_port_asked_for_is_not_changed(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(pgcluster.ClusterError, match="already in use"):
            pgcluster.start_cluster(str(tmp_path / "pg"), port=taken.getsockname()[1])
