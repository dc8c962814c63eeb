"""The Docker engine and the sandbox image: start dockerd when we may, build the image offline or from the Dockerfile."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

IMAGE = "capforecast-sandbox:1"   # bump the tag when the image recipe changes
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
DOCKER_SOCKET = "/var/run/docker.sock"
DOCKERD_LOG = "/tmp/capforecast-dockerd.log"
TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info")
DOCKERFILE = Path(__file__).with_name("Dockerfile")


def client(timeout: int = 120):
    """A docker SDK client for the local engine, or None if no engine answers."""
    try:
        import docker
        c = docker.from_env(timeout=timeout)
        c.ping()
        return c
    except Exception:  # noqa: BLE001 - any failure means "no engine here"
        return None


def engine_socket_exists() -> bool:
    if not os.path.exists(DOCKER_SOCKET):
        return False
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(DOCKER_SOCKET)
        return True
    except OSError:
        return False
    finally:
        s.close()


def start_engine(timeout_s: float = 60.0, log: str = DOCKERD_LOG):
    """Start dockerd in the background if no engine answers (root only, for hosts without an init system)."""
    c = client(timeout=10)
    if c is not None:
        return c
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        raise RuntimeError("no Docker engine answers and dockerd cannot be started here "
                           "(install docker.io and start the engine: `dockerd &` as root)")
    with open(log, "ab") as out:
        subprocess.Popen(["dockerd"], stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if engine_socket_exists():
            c = client(timeout=10)
            if c is not None:
                return c
        time.sleep(0.5)
    raise RuntimeError(f"dockerd did not come up within {timeout_s:.0f}s; see {log}")


def image_exists(c, name: str = IMAGE) -> bool:
    import docker
    try:
        c.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_offline(c, name: str = IMAGE, mirror: str = MIRROR, suite: str = SUITE, log=print) -> str:
    """Build the image from a debootstrap rootfs (minbase + python3) and ``docker import``; no registry needed."""
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install -y debootstrap)")
    with tempfile.TemporaryDirectory(prefix="capforecast-rootfs-") as tmp:
        rootfs, tarball = Path(tmp) / "rootfs", Path(tmp) / "rootfs.tar"
        log(f"debootstrap --variant=minbase --include=python3 {suite} (about a minute)")
        r = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3", suite, str(rootfs), mirror],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {r.stdout[-800:]} {r.stderr[-800:]}")
        for rel in TRIM:
            shutil.rmtree(rootfs / rel, ignore_errors=True)
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        repository, _, tag = name.partition(":")
        log(f"docker import -> {name}")
        c.api.import_image_from_file(str(tarball), repository=repository, tag=tag or "latest",
                                     changes=['CMD ["/usr/bin/python3"]', "LABEL capforecast.sandbox=image"])
    return name


def build_from_dockerfile(c, name: str = IMAGE, log=print) -> str:
    """Build the image from sandbox/Dockerfile (needs a reachable registry for the base image)."""
    log(f"docker build -f {DOCKERFILE} -t {name}")
    c.images.build(path=str(DOCKERFILE.parent), dockerfile=DOCKERFILE.name, tag=name, rm=True)
    return name


def ensure_image(c, name: str = IMAGE, log=print) -> str:
    """The image, built offline if it is missing."""
    if not image_exists(c, name):
        build_offline(c, name, log=log)
    return name
