"""The ``docker`` backend: long-lived hardened containers, each running the fork server in a user namespace.

Containers have no network, a read-only root, tmpfs /tmp, no-new-privileges, pids/memory/CPU limits, and only
CAP_SETUID and CAP_SETGID, which their PID 1 (sandbox.launcher) uses once to map a block of host uids that own
nothing into the server's user namespace, before it drops to an unprivileged uid; from then on nothing in the
container runs as host root, and each program gets a fresh world under a uid of its own (sandbox.world). For
that the container needs what docker's defaults forbid: namespaces and mounts (a seccomp profile that allows
them and denies what no sandbox needs, ``CONTAINER_SECCOMP``) and a /proc without masked paths (a masked proc
cannot be mounted again in a user namespace; no candidate ever sees the container's proc). The program
cgroups are delegated from the host (sandbox.cgroup). The host talks to the fork server over a Unix socket
that only the container's PID 1 could connect to, once (see DockerTransport). A container that dies or
misbehaves is removed and replaced by the pool; all of ours carry a label so that stale ones from a crashed
run are removed on the next start.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import socket
import struct
import tempfile
import time
from pathlib import Path

from sandbox import cgroup, uids
from sandbox.api import Limits
from sandbox.image import IMAGE, client, image_exists
from sandbox.pool import START_TIMEOUT_S, ForkServerPool, SandboxDied, read_before, server_argv
from sandbox.seccomp import DENIED

LABEL = "capforecast.sandbox"
OWNER = "capforecast.owner"
SCRATCH_MB = 256
PYTHON = "/usr/bin/python3"
CHANNEL, SOCKET = "/run/capforecast", "host.sock"   # where the host's socket appears inside the container
CHANNEL_PREFIX = "capforecast-channel-"
MEMORY_HEADROOM_MB = 512   # sandbox bound beyond one program's
PROGRAM_HEADROOM_MB = 64   # a program's memory cgroup beyond its per-process address-space limit
PROCESSES_HEADROOM = 8
# The container's own filter: everything a fork server needs (namespaces, mounts), nothing else of what the
# candidate's filter (sandbox.seccomp) denies. Candidates get both.
CONTAINER_SECCOMP = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
    "names": sorted(set(DENIED) - {"unshare", "setns", "mount", "umount2"}), "action": "SCMP_ACT_ERRNO"}]})


class DockerTransport:
    """A Unix socket between the host and one container's fork server: the engine is not in the data path.

    The host listens on a socket in a fresh directory that is bind-mounted read-only into the container,
    accepts one connection, checks that it comes from the container's PID 1 (the fork server, before any
    candidate exists), then closes the listener and unlinks the path, so nothing else can ever connect.
    Through the engine's attached stdin/stdout, dockerd, containerd and the shim spent about 4.6 CPU-s of their own
    on the 16,400-sample workload; this way 0.3 (docs/sandbox.md). The engine must run on this host (bind mount).
    """

    def __init__(self, container, conn, directory: str, cgroups: dict, block):
        self.container, self.conn, self.directory = container, conn, directory
        self.cgroups, self.block = cgroups, block
        self.conn.setblocking(True)

    def send(self, data: bytes) -> None:
        try:
            self.conn.sendall(data)
        except OSError as exc:
            raise SandboxDied(f"cannot write to the container: {exc}") from None

    def recv_exact(self, n: int, deadline: float) -> bytes:
        return read_before(self.conn.fileno(), n, deadline, "the container")

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        try:
            self.container.remove(force=True)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass
        shutil.rmtree(self.directory, ignore_errors=True)
        cgroup.remove(self.cgroups)
        self.block.release()

    def diagnostics(self) -> str:
        try:
            return self.container.logs(stdout=False, stderr=True, tail=20).decode("utf-8", "replace")[-2000:]
        except Exception:  # noqa: BLE001
            return ""


def apparmor_enabled() -> bool:
    try:
        return open("/sys/module/apparmor/parameters/enabled").read().strip() == "Y"
    except OSError:
        return False


def container_options(limits: Limits, channel_dir: str, cgroups: dict, block) -> dict:
    """The container's configuration (low-level API: the SDK cannot unmask /proc); ``channel_dir`` holds the host's
    socket, mounted read-only, ``cgroups`` the delegated cgroup directories."""
    flags = []
    binds = {channel_dir: {"bind": CHANNEL, "mode": "ro"}}
    for ctl, path in cgroups.items():
        binds[str(path)] = {"bind": f"{CHANNEL}/cgroup/{ctl}", "mode": "rw"}
        flags += ["--cgroup", f"{ctl}={CHANNEL}/cgroup/{ctl}"]
        os.makedirs(os.path.join(channel_dir, "cgroup", ctl), exist_ok=True)
    command = server_argv(PYTHON, "--launch", str(block.base), str(block.count), "--channel", f"{CHANNEL}/{SOCKET}",
                          "--fresh", "1", str(block.count - 1), *flags, "--hide", CHANNEL,
                          "--headroom", str(PROGRAM_HEADROOM_MB))
    security = ["no-new-privileges", f"seccomp={CONTAINER_SECCOMP}"] + (
        ["apparmor=unconfined"] if apparmor_enabled() else [])
    host = dict(
        binds=binds, network_mode="none", read_only=True, cap_drop=["ALL"], cap_add=["SETUID", "SETGID"],
        security_opt=security, pids_limit=limits.processes + PROCESSES_HEADROOM,
        mem_limit=f"{limits.memory_mb + MEMORY_HEADROOM_MB}m",
        memswap_limit=f"{limits.memory_mb + MEMORY_HEADROOM_MB}m",
        nano_cpus=1_000_000_000, shm_size="16m", tmpfs={"/tmp": f"size={SCRATCH_MB}m,mode=1777"}, ipc_mode="private")
    return dict(command=command, host=host, user="0:0", working_dir="/", hostname="sandbox",
                environment={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"},
                labels={LABEL: "fork-server", OWNER: f"{os.uname().nodename}:{os.getpid()}"})


def create(c, options: dict):
    host = c.api.create_host_config(**options["host"])
    host["MaskedPaths"], host["ReadonlyPaths"] = [], []   # docker's --security-opt systempaths=unconfined
    made = c.api.create_container(IMAGE, options["command"], user=options["user"], working_dir=options["working_dir"],
                                  hostname=options["hostname"], environment=options["environment"],
                                  labels=options["labels"], host_config=host, stdin_open=False, tty=False)
    return c.containers.get(made["Id"])


def start(c, slot: int, limits: Limits) -> DockerTransport:
    block = uids.allocate(slot, host_blocks=True)
    owner = block.base if os.geteuid() == 0 else None
    cgroups = cgroup.make(f"capforecast-{block.base}", (limits.memory_mb + MEMORY_HEADROOM_MB) << 20,
                          limits.processes + PROCESSES_HEADROOM, owner) if owner is not None else {}
    directory = tempfile.mkdtemp(prefix=f"{CHANNEL_PREFIX}{os.getpid()}-{slot}-")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    container = None
    try:
        os.chmod(directory, 0o711)   # the launcher may enter, not list; only the socket is inside
        path = os.path.join(directory, SOCKET)
        listener.bind(path)
        os.chmod(path, 0o666)
        listener.listen(4)
        container = create(c, container_options(limits, directory, cgroups, block))
        container.start()
        container.reload()
        conn = accept_from(listener, int(container.attrs["State"]["Pid"]), time.monotonic() + START_TIMEOUT_S)
        os.unlink(path)
    except BaseException:
        if container is not None:
            container.remove(force=True)
        shutil.rmtree(directory, ignore_errors=True)
        cgroup.remove(cgroups)
        block.release()
        raise
    finally:
        listener.close()
    return DockerTransport(container, conn, directory, cgroups, block)


def accept_from(listener: socket.socket, pid: int, deadline: float) -> socket.socket:
    """The first connection whose peer is ``pid`` (the container's PID 1 seen from the host); others are dropped."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([listener], [], [], remaining)[0]:
            raise SandboxDied("the container's fork server never connected")
        conn, _ = listener.accept()
        peer_pid, _, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                             struct.calcsize("3i")))
        if peer_pid == pid:
            return conn
        conn.close()


def remove_stale(c) -> int:
    """Remove sandbox containers (and channel dirs) left by processes of this host that no longer exist."""
    removed = 0
    for container in c.containers.list(all=True, filters={"label": LABEL}):
        host, _, pid = container.labels.get(OWNER, ":").partition(":")
        if host == os.uname().nodename and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            container.remove(force=True)
            removed += 1
    for path in Path(tempfile.gettempdir()).glob(f"{CHANNEL_PREFIX}*"):
        pid = path.name[len(CHANNEL_PREFIX):].split("-")[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(path, ignore_errors=True)
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
