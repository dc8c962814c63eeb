"""The docker backend's host channel: a Unix socket that only the container's PID 1 may use (no engine needed here)."""
import socket
import subprocess
import sys
import time

import pytest

from sandbox.docker_backend import accept_from
from sandbox.pool import SandboxDied


def listening(path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    return listener


def test_only_the_expected_process_gets_the_channel(tmp_path):
    path = tmp_path / "host.sock"
    listener = listening(path)
    intruder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    intruder.connect(str(path))   # first in line, but not the container's PID 1
    server = subprocess.Popen([sys.executable, "-c", "import socket, sys, time; s = socket.socket(socket.AF_UNIX); "
                               f"s.connect({str(path)!r}); s.sendall(b'ready'); time.sleep(5)"])
    try:
        conn = accept_from(listener, server.pid, time.monotonic() + 10)
        assert conn.recv(5) == b"ready"
        intruder.settimeout(5)
        assert intruder.recv(1) == b""   # dropped
    finally:
        server.kill()
        server.wait()


def test_a_server_that_never_connects_is_a_dead_sandbox(tmp_path):
    listener = listening(tmp_path / "host.sock")
    with pytest.raises(SandboxDied, match="never connected"):
        accept_from(listener, 2 ** 22 + 7, time.monotonic() + 0.2)
