"""The ``docker`` backend: long-lived hardened containers, each running the fork server as PID 1.

Containers have no network, a read-only root, tmpfs /tmp, a non-root uid per worker slot, no
capabilities, no-new-privileges, and pids/memory/CPU limits. The host talks to the fork server
through the container's attached stdin/stdout (the engine's multiplexed stream). A container that
dies or misbehaves is removed and replaced by the pool; all of ours carry a label so that stale
ones from a crashed run are removed on the next start.
"""
from __future__ import annotations

import os
import select
import time

from sandbox.api import Limits
from sandbox.image import IMAGE, client, image_exists
from sandbox.pool import ForkServerPool, SandboxDied, server_argv, slot_uid

LABEL = "capforecast.sandbox"
OWNER = "capforecast.owner"
SCRATCH_MB = 256
PYTHON = "/usr/bin/python3"


class DockerTransport:
    """The attached stdin/stdout of one container; demultiplexes the engine's 8-byte-header frames."""

    def __init__(self, container, sock):
        self.container, self.raw = container, sock._sock
        self.raw.setblocking(True)
        self.buffer, self.pending = bytearray(), 0  # demuxed stdout bytes; bytes left in the current frame
        self.header, self.stream = bytearray(), 1

    def send(self, data: bytes) -> None:
        try:
            self.raw.sendall(data)
        except OSError as exc:
            raise SandboxDied(f"cannot write to the container: {exc}") from None

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.raw], [], [], remaining)[0]:
            raise SandboxDied("the container stopped answering")
        data = self.raw.recv(1 << 16)
        if not data:
            raise SandboxDied("the container exited")
        view = memoryview(data)
        while view:
            if self.pending == 0:
                need = 8 - len(self.header)
                self.header += view[:need]
                view = view[need:]
                if len(self.header) == 8:
                    self.stream, self.pending = self.header[0], int.from_bytes(self.header[4:8], "big")
                    self.header.clear()
                continue
            chunk = view[: self.pending]
            if self.stream == 1:
                self.buffer += chunk
            self.pending -= len(chunk)
            view = view[len(chunk):]

    def recv_exact(self, n: int, deadline: float) -> bytes:
        while len(self.buffer) < n:
            self._fill(deadline)
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def close(self) -> None:
        try:
            self.raw.close()
        except OSError:
            pass
        try:
            self.container.remove(force=True)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass

    def diagnostics(self) -> str:
        try:
            return self.container.logs(stdout=False, stderr=True, tail=20).decode("utf-8", "replace")[-2000:]
        except Exception:  # noqa: BLE001
            return ""


def container_options(slot: int, limits: Limits) -> dict:
    """The hardening every sandbox container gets."""
    uid = slot_uid(slot)
    return dict(
        command=server_argv(PYTHON, "--scratch", "/tmp", "--wipe", "/dev/shm"),
        stdin_open=True, tty=False, detach=True, user=f"{uid}:{uid}", working_dir="/tmp",
        network_mode="none", read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges"],
        pids_limit=limits.processes + 8, mem_limit=f"{limits.memory_mb + 512}m",
        memswap_limit=f"{limits.memory_mb + 512}m", nano_cpus=1_000_000_000, shm_size="16m",
        tmpfs={"/tmp": f"size={SCRATCH_MB}m,mode=1777"}, ipc_mode="private", hostname="sandbox",
        environment={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"},
        labels={LABEL: "fork-server", OWNER: f"{os.uname().nodename}:{os.getpid()}"},
    )


def start(c, slot: int, limits: Limits) -> DockerTransport:
    container = c.containers.create(IMAGE, **container_options(slot, limits))
    try:
        sock = c.api.attach_socket(container.id, params={"stdin": 1, "stdout": 1, "stream": 1})
        container.start()
    except Exception:
        container.remove(force=True)
        raise
    return DockerTransport(container, sock)


def remove_stale(c) -> int:
    """Remove sandbox containers left by processes of this host that no longer exist; returns how many."""
    removed = 0
    for container in c.containers.list(all=True, filters={"label": LABEL}):
        host, _, pid = container.labels.get(OWNER, ":").partition(":")
        if host == os.uname().nodename and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            container.remove(force=True)
            removed += 1
    return removed


def our_containers(c) -> list:
    """Sandbox containers owned by this process."""
    me = f"{os.uname().nodename}:{os.getpid()}"
    return [x for x in c.containers.list(all=True, filters={"label": LABEL}) if x.labels.get(OWNER) == me]


def availability() -> tuple[bool, str]:
    """Whether the docker backend works here, and why (not)."""
    try:
        import docker  # noqa: F401
    except ImportError:
        return False, "the docker Python SDK is not installed (pip install docker)"
    c = client(timeout=10)
    if c is None:
        return False, "no Docker engine answers (start it: `dockerd &` as root, or your init system)"
    if not image_exists(c, IMAGE):
        return False, f"the engine answers but the image {IMAGE} is missing (run `capforecast sandbox build`)"
    return True, f"engine answers and image {IMAGE} exists"


class DockerPool(ForkServerPool):
    """Fork-server containers; close() removes every container this pool started."""

    def __init__(self, limits: Limits, workers: int):
        self.client = client(timeout=120)
        remove_stale(self.client)
        super().__init__("docker", lambda slot: start(self.client, slot, limits), limits, workers)


def open_docker(limits: Limits, workers: int) -> DockerPool:
    return DockerPool(limits, workers)
